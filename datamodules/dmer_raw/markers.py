"""Clip boundaries from DMER's trigger codes.

Every stream (EEG trigger channel, wristband CSV trigger column, camera event CSV) marks the start
of clip ``c`` (0-31) with code ``c + 10`` and its end with ``c + 100`` (start + 90). Other codes
(the resting state 60/150, the practice clip 50/140) are ignored. As in the authors' scripts, a
clip spans from its start sample up to, not including, its end sample, and the end must be the
marker right after the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.dmer import NUM_CLIPS
from datamodules.io import DataFormatError

START_OFFSET = 10
END_OFFSET = 100


@dataclass(frozen=True)
class ClipSpan:
    """Half-open sample range ``[start, end)`` of one clip in one stream."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Number of samples."""
        return self.end - self.start


def marker_onsets(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices and codes where a trigger code starts.

    A marker held over several samples counts once (at its first sample); a code followed
    directly by a different non-zero code counts as a new marker.

    Args:
        codes: Integer trigger values ``[T]``, 0 when no marker.

    Returns:
        ``(indices, codes)`` of the onsets, in time order.
    """
    codes = np.asarray(codes).astype(np.int64)
    previous = np.concatenate(([0], codes[:-1]))
    onset = (codes != 0) & (codes != previous)
    indices = np.flatnonzero(onset)
    return indices, codes[indices]


def clip_spans(codes: np.ndarray, source: str) -> dict[int, ClipSpan]:
    """The span of every clip 0-31 in a trigger sequence.

    Args:
        codes: Trigger values ``[T]`` (0 = no marker).
        source: The file (and column) the codes come from, named in errors.

    Returns:
        Clip id -> its span.

    Raises:
        DataFormatError: A start marker not directly followed by its end marker, a clip marked
            twice, or a clip without markers.
    """
    indices, values = marker_onsets(codes)
    spans: dict[int, ClipSpan] = {}
    for k, (index, code) in enumerate(zip(indices.tolist(), values.tolist(), strict=True)):
        clip = code - START_OFFSET
        if not 0 <= clip < NUM_CLIPS:
            continue
        following = values[k + 1] if k + 1 < len(values) else None
        if following != clip + END_OFFSET:
            found = "the end of the recording" if following is None else f"code {following}"
            raise DataFormatError(
                f"{source}: clip {clip} start marker {code} at sample {index} has no end: "
                f"expected code {clip + END_OFFSET} as the next marker, found {found}"
            )
        if clip in spans:
            raise DataFormatError(
                f"{source}: clip {clip} is marked twice (start code {code} at samples "
                f"{spans[clip].start} and {index}); expected one start/end pair per clip"
            )
        spans[clip] = ClipSpan(int(index), int(indices[k + 1]))
    missing = sorted(set(range(NUM_CLIPS)) - set(spans))
    if missing:
        raise DataFormatError(
            f"{source}: no start/end markers for clips {missing}; expected codes clip+10 and "
            f"clip+100 for every clip 0-{NUM_CLIPS - 1}"
        )
    return spans
