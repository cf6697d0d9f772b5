r"""LBP-TOP (local binary patterns on three orthogonal planes), vectorised over a whole segment.

For every centre voxel :math:`(t, y, x)` at least ``time_radius`` frames and ``radius`` pixels
away from the borders, and for each plane (XY, XT, YT), the code is

.. math::  \mathrm{LBP} = \sum_{p=0}^{P-1} 2^p \,[\, v(n_p) \ge v(t, y, x) \,]

with neighbour :math:`n_p` at angle :math:`\theta_p = 2\pi p / P` rounded to the voxel grid as
``floor(c + r cos(theta) + 0.5)``:

* XY: :math:`(x + R\cos\theta_p,\; y - R\sin\theta_p)` in frame :math:`t`;
* XT: :math:`(x + R\cos\theta_p,\; t + R_t\sin\theta_p)` in row :math:`y`;
* YT: :math:`(y - R\cos\theta_p,\; t + R_t\sin\theta_p)` in column :math:`x`.

Each plane's 256-bin histogram is normalised to sum 1, giving ``3 x 256`` values. The authors'
script uses :math:`y - R\cos\theta_p` in the XY plane too, so that its XY "circle" collapses onto
the anti-diagonal and two of its bits compare the centre with itself: ``reference=True``
reproduces that.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 256
PLANES = ("XY", "XT", "YT")


def neighbour_offsets(
    radius: int = 1, time_radius: int = 4, neighbours: int = 8, reference: bool = False
) -> dict[str, list[tuple[int, int, int]]]:
    """Integer ``(dt, dy, dx)`` offsets of the neighbours of each plane, in bit order."""

    def grid(value: float) -> int:
        return math.floor(value + 0.5)

    out: dict[str, list[tuple[int, int, int]]] = {plane: [] for plane in PLANES}
    for p in range(neighbours):
        angle = 2 * math.pi * p / neighbours
        cos, sin = math.cos(angle), math.sin(angle)
        xy_dy = grid(-radius * cos) if reference else grid(-radius * sin)
        out["XY"].append((0, xy_dy, grid(radius * cos)))
        out["XT"].append((grid(time_radius * sin), 0, grid(radius * cos)))
        out["YT"].append((grid(time_radius * sin), grid(-radius * cos), 0))
    return out


def lbp_top(
    volume: np.ndarray,
    radius: int = 1,
    time_radius: int = 4,
    neighbours: int = 8,
    reference: bool = False,
) -> np.ndarray:
    """Normalised LBP-TOP histograms of one segment.

    Args:
        volume: Gray frames ``[T, H, W]`` (uint8 or any real dtype).
        radius: Spatial radius :math:`R`.
        time_radius: Temporal radius :math:`R_t`.
        neighbours: Neighbours per plane :math:`P` (8 for 256 bins).
        reference: The authors' XY neighbour coordinates (see the module docstring).

    Returns:
        ``[3 * 256]`` float64: the XY, XT and YT histograms, each summing to 1.

    Raises:
        ValueError: A volume too small to hold one centre voxel.
    """
    if neighbours > 8:
        raise ValueError(f"at most 8 neighbours fit a uint8 code, got {neighbours}")
    v = np.asarray(volume)
    frames, height, width = v.shape
    if frames <= 2 * time_radius or height <= 2 * radius or width <= 2 * radius:
        raise ValueError(
            f"an LBP-TOP segment of {frames} x {height} x {width} has no centre voxel with "
            f"radius {radius} and time radius {time_radius}"
        )
    t0, t1 = time_radius, frames - time_radius
    y0, y1 = radius, height - radius
    x0, x1 = radius, width - radius
    centre = v[t0:t1, y0:y1, x0:x1]
    # Preallocated buffers and out= arguments: a fresh array per operation costs more than the
    # operation itself at 640 x 480 x 22 centres.
    code = np.empty(centre.shape, dtype=np.uint8)
    bit = np.empty(centre.shape, dtype=bool)
    shifted = np.empty(centre.shape, dtype=np.uint8)
    histograms = []
    for offsets in neighbour_offsets(radius, time_radius, neighbours, reference).values():
        code.fill(0)
        for p, (dt, dy, dx) in enumerate(offsets):
            neighbour = v[t0 + dt : t1 + dt, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
            np.greater_equal(neighbour, centre, out=bit)
            np.left_shift(bit.view(np.uint8), np.uint8(p), out=shifted)
            np.bitwise_or(code, shifted, out=code)
        counts = np.bincount(code.ravel(), minlength=BINS).astype(np.float64)
        histograms.append(counts / counts.sum())
    return np.concatenate(histograms)
