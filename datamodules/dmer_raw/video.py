"""Face video: probing, and grayscale frames of chosen ranges decoded in one pass with PyAV.

Gray levels use OpenCV's fixed-point BT.601 weights, ``(4899 R + 9617 G + 1868 B + 2^13) >> 14``,
so that values match the authors' ``cv2.cvtColor``. Their frames were BGR but converted with
``COLOR_RGB2GRAY``, which swaps the red and blue weights: ``reference`` mode reproduces that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from datamodules.io import DataFormatError

#: Relative tolerance of the container's frame rate against the expected one.
FPS_TOLERANCE = 0.02
_WEIGHTS = (4899, 9617, 1868)


def to_gray(rgb: np.ndarray, swap_red_blue: bool = False) -> np.ndarray:
    """``[..., H, W, 3]`` uint8 RGB -> ``[..., H, W]`` uint8 gray (OpenCV's rounding).

    Args:
        rgb: RGB frames.
        swap_red_blue: Weigh the channels as OpenCV's RGB2GRAY does on a BGR frame (the
            authors' quirk).
    """
    r, g, b = _WEIGHTS[::-1] if swap_red_blue else _WEIGHTS
    x = rgb.astype(np.int32)
    gray = (x[..., 0] * r + x[..., 1] * g + x[..., 2] * b + (1 << 13)) >> 14
    return gray.astype(np.uint8)


def probe_video(path: Path, fps: float) -> int:
    """Check the frame rate of a video and return its number of frames.

    The count comes from the container header, or from counting packets when the header has
    none (no decoding).

    Raises:
        DataFormatError: Not a readable video, no video stream, or another frame rate.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataFormatError(f"{path}: no video stream; expected the face video")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if abs(rate - fps) > FPS_TOLERANCE * fps:
                raise DataFormatError(
                    f"{path}: frame rate {rate:g} fps in the container, expected {fps:g} fps "
                    "(--video-fps)"
                )
            frames = int(stream.frames or 0)
            if frames <= 0:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            return frames
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: unreadable video ({type(error).__name__}: {error})"
        ) from error


def gray_frames(
    path: Path,
    ranges: Sequence[tuple[int, int]],
    swap_red_blue: bool = False,
    box: tuple[int, int, int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the video once and yield ``(range index, gray frame)`` for frames in ``ranges``.

    Args:
        path: The video file.
        ranges: Disjoint half-open frame ranges ``[start, end)``, in any order.
        swap_red_blue: See :func:`to_gray`.
        box: Crop ``(x, y, width, height)`` applied before the conversion.

    Raises:
        DataFormatError: The video cannot be decoded, ends before a range does, or the crop
            box lies outside the frame.
    """
    import av

    order = sorted(range(len(ranges)), key=lambda k: ranges[k][0])
    if not order:
        return
    position = 0
    index = 0
    last = max(end for _, end in ranges)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                while position < len(order) and index >= ranges[order[position]][1]:
                    position += 1
                if position == len(order):
                    break
                start, _ = ranges[order[position]]
                if index >= start:
                    rgb = frame.to_ndarray(format="rgb24")
                    if box is not None:
                        x, y, w, h = box
                        if x < 0 or y < 0 or x + w > rgb.shape[1] or y + h > rgb.shape[0]:
                            raise DataFormatError(
                                f"{path}: face box {box} lies outside the {rgb.shape[1]} x "
                                f"{rgb.shape[0]} frame (--face-box)"
                            )
                        rgb = rgb[y : y + h, x : x + w]
                    yield order[position], to_gray(rgb, swap_red_blue)
                index += 1
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: unreadable video at frame {index} ({type(error).__name__}: {error})"
        ) from error
    if index < last:
        raise DataFormatError(
            f"{path}: the video ends at frame {index}, but frames up to {last} are needed"
        )
