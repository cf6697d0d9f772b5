"""Windows inside the study conditions of WESAD's 700 Hz ``label`` array.

A *segment* is a maximal run of one condition code (1 baseline, 2 stress, 3 amusement,
4 meditation); transient (0) and ignored (5/6/7) samples belong to no segment. A *round* is the
rated period of the protocol that a segment belongs to: segments of one condition separated only
by transient samples are one round; otherwise each segment starts a new round. The label array
has two meditation rounds; the ``occurrence``-th round of a condition in time order is matched to
the ``occurrence``-th ``# ORDER`` entry of that condition (``Medi 1`` then ``Medi 2``).

Windows of ``window_seconds`` start every ``hop_seconds`` from each segment's first sample and
end inside the segment, so no window straddles two segments; a segment of ``L`` samples yields
``floor((L - W) / H) + 1`` windows (none if ``L < W``) for window and hop lengths ``W`` and
``H`` in samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from datamodules.wesad.layout import CONDITION_NAMES, LABEL_RATE, MEDITATION

STUDY_CONDITIONS = tuple(CONDITION_NAMES)


@dataclass(frozen=True)
class Segments:
    """Runs of study conditions in the label array, in time order.

    Attributes:
        condition: Int64 ``[S]`` condition code of each run.
        occurrence: Int64 ``[S]`` round number of the run among rounds of its condition.
        start: Int64 ``[S]`` first sample (700 Hz) of each run.
        stop: Int64 ``[S]`` one past the last sample of each run.
    """

    condition: np.ndarray
    occurrence: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    def __len__(self) -> int:
        return len(self.condition)


@dataclass(frozen=True)
class Windows:
    """Where each window lies, in seconds from the recording's start.

    Attributes:
        start: Float64 ``[W]`` window start.
        length: Window length in seconds (the same for every window).
        segment_start: Float64 ``[W]`` start of the window's segment.
        segment_stop: Float64 ``[W]`` end of the window's segment.
        condition: Int64 ``[W]`` condition code.
        occurrence: Int64 ``[W]`` round number of the window's condition (see :class:`Segments`).
        position: Int64 ``[W]`` order of the window within its round (0, 1, ...).
    """

    start: np.ndarray
    length: float
    segment_start: np.ndarray
    segment_stop: np.ndarray
    condition: np.ndarray
    occurrence: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def indices(self, rate: float) -> tuple[np.ndarray, int]:
        """First sample of every window in a signal sampled at ``rate``, and the window size."""
        return np.round(self.start * rate).astype(np.int64), round(self.length * rate)


def find_segments(label: np.ndarray) -> Segments:
    """Runs of study conditions (codes 1-4) in a label array, with their round numbers."""
    label = np.asarray(label).reshape(-1)
    study = np.where(np.isin(label, STUDY_CONDITIONS), label, 0)
    change = np.flatnonzero(np.diff(study)) + 1
    bounds = np.concatenate([[0], change, [len(study)]])
    start, stop = bounds[:-1], bounds[1:]
    keep = study[start] > 0
    condition = study[start][keep].astype(np.int64)
    start, stop = start[keep].astype(np.int64), stop[keep].astype(np.int64)
    occurrence = np.zeros(len(condition), dtype=np.int64)
    # A run continues the previous round when the previous run has the same condition and only
    # transient samples (0) lie between them.
    rounds: dict[int, int] = {}
    for i, code in enumerate(condition.tolist()):
        gap = label[stop[i - 1] : start[i]] if i else label[:0]
        continues = i > 0 and condition[i - 1] == code and not np.any(gap)
        if not continues:
            rounds[code] = rounds.get(code, -1) + 1
        occurrence[i] = rounds[code]
    return Segments(condition, occurrence, start, stop)


def trial_id(condition: int, occurrence: int) -> int:
    """Trial id of a round: its condition code; the second meditation round is trial 5.

    Raises:
        ValueError: For a repeated round of a condition other than meditation.
    """
    if occurrence == 0:
        return condition
    if condition == MEDITATION:
        return MEDITATION + occurrence
    raise ValueError(
        f"round {occurrence + 1} of condition {condition} ({CONDITION_NAMES[condition]}): only "
        "meditation is repeated in the WESAD protocol"
    )


def check_window_settings(window_seconds: float, hop_seconds: float, rates: list[int]) -> None:
    """Check that windows have a whole number of samples at every sampling rate.

    Raises:
        ValueError: Naming the setting and the rate it does not fit.
    """
    if window_seconds <= 0 or hop_seconds <= 0:
        raise ValueError(
            f"window_seconds and hop_seconds must be positive, got {window_seconds}, {hop_seconds}"
        )
    for rate in rates:
        samples = window_seconds * rate
        if abs(samples - round(samples)) > 1e-6 or round(samples) < 2:
            raise ValueError(
                f"window_seconds={window_seconds} is {samples:g} samples at {rate} Hz; expected "
                "a whole number of at least 2 (use a multiple of 0.25 s of at least 0.5 s)"
            )
    if abs(hop_seconds * LABEL_RATE - round(hop_seconds * LABEL_RATE)) > 1e-6:
        raise ValueError(
            f"hop_seconds={hop_seconds} is not a whole number of {LABEL_RATE} Hz samples"
        )


def place_windows(
    segments: Segments,
    window_seconds: float,
    hop_seconds: float,
    signal_lengths: Mapping[float, int] | None = None,
) -> Windows:
    """Place windows inside every segment.

    Args:
        segments: The study-condition runs of a label array.
        window_seconds: Window length.
        hop_seconds: Step between window starts.
        signal_lengths: Sampling rate -> number of samples of each signal; windows that run past
            the end of any signal are dropped (the wrist stream may end a moment early).

    Returns:
        Windows in time order; positions count on across the runs of one round.
    """
    width = round(window_seconds * LABEL_RATE)
    hop = round(hop_seconds * LABEL_RATE)
    counts = np.maximum((segments.stop - segments.start - width) // hop + 1, 0)
    owner = np.repeat(np.arange(len(segments)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    within = np.arange(len(owner)) - np.repeat(first, counts)
    start_sample = segments.start[owner] + within * hop
    keep = np.ones(len(owner), dtype=bool)
    for rate, length in (signal_lengths or {}).items():
        keep &= np.round(start_sample / LABEL_RATE * rate) + round(window_seconds * rate) <= length
    owner, start_sample = owner[keep], start_sample[keep]
    # Position within the round: windows are in time order, so a running count per round.
    round_key = segments.condition[owner] * 1000 + segments.occurrence[owner]
    _, inverse = np.unique(round_key, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    group_start = np.searchsorted(inverse[order], inverse[order], side="left")
    position = np.empty(len(owner), dtype=np.int64)
    position[order] = np.arange(len(owner)) - group_start
    return Windows(
        start=start_sample / LABEL_RATE,
        length=float(window_seconds),
        segment_start=segments.start[owner] / LABEL_RATE,
        segment_stop=segments.stop[owner] / LABEL_RATE,
        condition=segments.condition[owner],
        occurrence=segments.occurrence[owner],
        position=position,
    )
