"""Per-clip alignment of the four streams: the last whole steps that every stream covers.

As in the authors' ``AlignAllData.py``: a clip's usable length is
``L = floor(min over streams of (samples / rate))`` seconds (in steps of ``step`` seconds
here), and every stream keeps its last ``L`` seconds, so that all streams end together at the
clip's end marker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from datamodules.dmer_raw.markers import ClipSpan
from datamodules.io import DataFormatError


def aligned_steps(lengths: Mapping[str, int], rates: Mapping[str, float], step: float) -> int:
    """Whole steps covered by every stream: ``floor(min_k lengths[k] / (rates[k] * step))``."""
    return min(math.floor(lengths[k] / round(rates[k] * step)) for k in lengths)


def align_clip(
    spans: Mapping[str, ClipSpan],
    rates: Mapping[str, float],
    step: float,
    minimum_steps: int,
    where: str,
) -> tuple[int, dict[str, ClipSpan]]:
    """The aligned steps of one clip and each stream's span of its last ``steps`` steps.

    Args:
        spans: Stream name -> the clip's span in that stream (samples or frames).
        rates: Stream name -> samples (frames) per second.
        step: Seconds per step.
        minimum_steps: Fewest steps a clip may have (the peripheral window).
        where: Participant and clip, named in errors.

    Raises:
        DataFormatError: The clip is shorter than ``minimum_steps`` steps in some stream.
    """
    steps = aligned_steps({k: s.length for k, s in spans.items()}, rates, step)
    if steps < minimum_steps:
        seconds = {k: round(s.length / rates[k], 3) for k, s in spans.items()}
        raise DataFormatError(
            f"{where}: the clip lasts {steps * step:g} s in every stream (per stream, in s: "
            f"{seconds}), shorter than the {minimum_steps * step:g}-s peripheral window"
        )
    out = {}
    for name, span in spans.items():
        count = steps * round(rates[name] * step)
        out[name] = ClipSpan(span.end - count, span.end)
    return steps, out
