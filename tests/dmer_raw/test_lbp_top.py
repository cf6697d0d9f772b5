"""LBP-TOP: hand-computed codes of constructed volumes, and a loop-by-loop definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datamodules.dmer_raw.lbp_top import lbp_top, neighbour_offsets
from datamodules.dmer_raw.video import to_gray


def _one_hot(*codes):
    out = np.zeros(3 * 256)
    for plane, code in enumerate(codes):
        out[256 * plane + code] = 1.0
    return out


def _volume(kind, frames=12, height=6, width=7):
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    return {"t": t, "y": y, "x": x, "flat": np.zeros_like(t)}[kind].astype(np.uint8)


def test_offsets_by_hand():
    # Neighbour p at angle 2 pi p / 8, rounded with floor(v + 0.5): cos -> dx 1 1 0 -1 -1 -1 0 1
    offsets = neighbour_offsets()
    assert [dx for _, _, dx in offsets["XY"]] == [1, 1, 0, -1, -1, -1, 0, 1]
    assert [dy for _, dy, _ in offsets["XY"]] == [0, -1, -1, -1, 0, 1, 1, 1]  # -sin
    assert [dt for dt, _, _ in offsets["XT"]] == [0, 3, 4, 3, 0, -3, -4, -3]  # 4 sin
    assert [dy for _, dy, _ in offsets["YT"]] == [-1, -1, 0, 1, 1, 1, 0, -1]  # -cos
    # the authors' XY uses -cos for y: every neighbour on the anti-diagonal or the centre
    assert [dy for _, dy, _ in neighbour_offsets(reference=True)["XY"]] == [
        -1, -1, 0, 1, 1, 1, 0, -1,
    ]  # fmt: skip


@pytest.mark.parametrize("reference", [False, True])
def test_constant_volume_sets_every_bit(reference):
    # every neighbour >= centre: code 255 in each plane
    got = lbp_top(_volume("flat"), reference=reference)
    np.testing.assert_array_equal(got, _one_hot(255, 255, 255))


def test_gradients_by_hand():
    # v = y. XY (corrected): bits whose dy >= 0 -> p 0, 4, 5, 6, 7 -> 1 + 16 + 32 + 64 + 128.
    # XT: dy = 0 everywhere -> 255. YT: dy = -cos >= 0 -> p 2..6 -> 4 + 8 + 16 + 32 + 64 = 124.
    np.testing.assert_array_equal(lbp_top(_volume("y")), _one_hot(241, 255, 124))
    # Reference XY uses dy = -cos as YT does: 124.
    np.testing.assert_array_equal(lbp_top(_volume("y"), reference=True), _one_hot(124, 255, 124))
    # v = x. XY: dx >= 0 -> p 0, 1, 2, 6, 7 -> 1 + 2 + 4 + 64 + 128 = 199; XT the same;
    # YT: dx = 0 -> 255.
    np.testing.assert_array_equal(lbp_top(_volume("x")), _one_hot(199, 199, 255))
    # v = t. XY: 255. XT and YT: dt = 4 sin >= 0 -> p 0..4 -> 31.
    np.testing.assert_array_equal(lbp_top(_volume("t")), _one_hot(255, 31, 31))


def _lbp_top_loops(volume, reference):
    """LBP-TOP straight from the definition, voxel by voxel (test reference)."""
    v = volume.astype(np.int64)
    frames, height, width = v.shape
    hist = np.zeros((3, 256))
    for t in range(4, frames - 4):
        for y in range(1, height - 1):
            for x in range(1, width - 1):
                codes = [0, 0, 0]
                for p in range(8):
                    c, s = math.cos(2 * math.pi * p / 8), math.sin(2 * math.pi * p / 8)
                    xy_y = int(y - (c if reference else s) + 0.5)
                    neighbours = (
                        v[t, xy_y, int(x + c + 0.5)],
                        v[int(t + 4 * s + 0.5), y, int(x + c + 0.5)],
                        v[int(t + 4 * s + 0.5), int(y - c + 0.5), x],
                    )
                    for plane, value in enumerate(neighbours):
                        codes[plane] += (value >= v[t, y, x]) << p
                for plane in range(3):
                    hist[plane, codes[plane]] += 1
    return (hist / hist.sum(axis=1, keepdims=True)).reshape(-1)


@pytest.mark.parametrize("reference", [False, True])
def test_matches_the_definition_on_random_frames(reference):
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 6, size=(11, 6, 7), dtype=np.uint8)  # few levels: many ties
    np.testing.assert_allclose(
        lbp_top(volume, reference=reference), _lbp_top_loops(volume, reference)
    )


def test_too_small_volume_is_an_error():
    with pytest.raises(ValueError, match="no centre voxel"):
        lbp_top(np.zeros((8, 5, 5), np.uint8))


def test_gray_conversion_weights():
    pixel = np.array([[[255, 0, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    # OpenCV fixed point: (4899 R + 9617 G + 1868 B + 8192) >> 14
    np.testing.assert_array_equal(to_gray(pixel), [[76, 29, 18]])
    np.testing.assert_array_equal(to_gray(pixel, swap_red_blue=True), [[29, 76, 22]])
