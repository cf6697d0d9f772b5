"""Vectorised building blocks of the WESAD features: window views, filters, event statistics.

Two patterns keep feature extraction free of per-window Python loops:

* *window statistics*: a strided view ``[W, n]`` of a signal (one row per window, no copy),
  reduced along its last axis, in chunks of windows to bound the memory of temporaries;
* *event statistics*: events (heart beats, breaths, skin conductance responses) are detected
  once over the whole recording; per-window sums of event properties come from prefix sums
  indexed with ``searchsorted``, so a window's statistic costs O(1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d, minimum_filter1d

CHUNK_SAMPLES = 4_000_000
"""Largest number of samples (windows x window length) gathered at once."""


def windowed(
    x: np.ndarray,
    starts: np.ndarray,
    size: int,
    reduce: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Apply ``reduce`` to the windows ``x[s : s + size]`` for every ``s`` in ``starts``.

    Args:
        x: Signal ``[T]`` or ``[T, C]``.
        starts: Int ``[W]`` first sample of each window.
        size: Window length in samples.
        reduce: Maps a window batch ``[w, size]`` (``[w, C, size]`` for multichannel input) to
            features ``[w, F]``.

    Returns:
        ``[W, F]`` features.
    """
    view = sliding_window_view(x, size, axis=0)
    step = max(1, CHUNK_SAMPLES // size)
    parts = [reduce(view[starts[i : i + step]]) for i in range(0, max(len(starts), 1), step)]
    return np.concatenate(parts)


def slope(windows: np.ndarray, rate: float) -> np.ndarray:
    """Least-squares slope per row, in units per second.

    ``slope = sum((t - mean t) (x - mean x)) / sum((t - mean t)^2)`` with ``t = i / rate``.
    """
    t = np.arange(windows.shape[-1]) / rate
    t = t - t.mean()
    return (windows * t).sum(-1) / (t * t).sum()


def band_filter(
    x: np.ndarray, rate: float, low: float | None, high: float | None, order: int = 2
) -> np.ndarray:
    """Zero-phase Butterworth filter along the first axis (band, low or high pass)."""
    if low and high:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=rate, output="sos")
    elif high:
        sos = sps.butter(order, high, btype="lowpass", fs=rate, output="sos")
    else:
        sos = sps.butter(order, low, btype="highpass", fs=rate, output="sos")
    return sps.sosfiltfilt(sos, x, axis=0)


def resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Polyphase resampling along the first axis (anti-aliased), ``rate`` -> ``new_rate``."""
    g = np.gcd(rate, new_rate)
    return sps.resample_poly(x, new_rate // g, rate // g, axis=0)


def detect_peaks(
    x: np.ndarray, rate: float, min_distance: float, relative_prominence: float, span: float
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a signal with an amplitude-adaptive prominence threshold, in one pass.

    A peak must rise ``relative_prominence`` times the local peak-to-trough range (over
    ``span`` seconds) above its surroundings, so the detector follows amplitude changes (sensor
    contact, posture) without a per-window threshold. Peak times are refined by parabolic
    interpolation of the three samples around each peak.

    Returns:
        Peak times in seconds and their prominences.
    """
    size = max(3, int(span * rate))
    local_range = maximum_filter1d(x, size) - minimum_filter1d(x, size)
    peaks, properties = sps.find_peaks(
        x,
        distance=max(1, int(min_distance * rate)),
        prominence=relative_prominence * local_range,
    )
    inner = peaks[(peaks > 0) & (peaks < len(x) - 1)]
    left, centre, right = x[inner - 1], x[inner], x[inner + 1]
    curvature = left - 2 * centre + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, 1), 0)
    times = peaks.astype(np.float64)
    times[(peaks > 0) & (peaks < len(x) - 1)] += np.clip(shift, -0.5, 0.5)
    return times / rate, properties["prominences"]


def _range_sums(prefix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return prefix[hi] - prefix[lo]


def _prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


def interval_stats(
    events: np.ndarray,
    window_start: np.ndarray,
    window_stop: np.ndarray,
    segment_start: np.ndarray,
    segment_stop: np.ndarray,
    min_interval: float,
    max_interval: float,
) -> dict[str, np.ndarray]:
    """Statistics of the intervals between consecutive events (beats, breaths) per window.

    Interval ``k`` runs from event ``k - 1`` to event ``k``. A window uses the intervals that
    overlap it and lie inside its segment, so a 5-s window at 15 breaths/min still sees the
    breath it is part of. Intervals outside ``[min_interval, max_interval]`` (missed or spurious
    detections) are left out. With ``d`` the kept intervals and ``s`` the successive differences
    of adjacent kept intervals:

    * ``mean = mean(d)``, ``std = sqrt(mean(d^2) - mean(d)^2)``,
    * ``rate_mean = mean(60 / d)``, ``rate_std``: the same for the instantaneous rate,
    * ``rmssd = sqrt(mean(s^2))``, ``pnn50 = mean(|s| > 0.05 s)``, ``count = len(d)``.

    Statistics without enough intervals are NaN.

    Returns:
        Name -> float64 ``[W]``.
    """
    events = np.asarray(events, dtype=np.float64)
    d = np.diff(events, prepend=np.nan)
    valid = (d >= min_interval) & (d <= max_interval)
    dv = np.where(valid, d, 0.0)
    rate = np.where(valid, 60.0 / np.where(valid, d, 1.0), 0.0)
    pair = valid & np.roll(valid, 1)
    pair[:2] = False
    succ = np.where(pair, d - np.roll(d, 1), 0.0)
    lo = np.maximum.reduce(
        [
            np.searchsorted(events, window_start, "right"),
            np.searchsorted(events, segment_start, "left") + 1,
            np.ones(len(window_start), dtype=np.int64),
        ]
    )
    hi = np.minimum(
        np.searchsorted(events, window_stop, "left") + 1,
        np.searchsorted(events, segment_stop, "right"),
    )
    hi = np.maximum(hi, lo)
    # Successive differences need both intervals in the window: indices lo + 1 .. hi - 1.
    lo_pair = np.minimum(lo + 1, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = _range_sums(_prefix(valid.astype(np.float64)), lo, hi)
        mean = _range_sums(_prefix(dv), lo, hi) / n
        var = _range_sums(_prefix(dv * dv), lo, hi) / n - mean**2
        rate_mean = _range_sums(_prefix(rate), lo, hi) / n
        rate_var = _range_sums(_prefix(rate * rate), lo, hi) / n - rate_mean**2
        n_pair = _range_sums(_prefix(pair.astype(np.float64)), lo_pair, hi)
        rmssd = np.sqrt(_range_sums(_prefix(succ * succ), lo_pair, hi) / n_pair)
        pnn50 = _range_sums(_prefix((np.abs(succ) > 0.05) & pair), lo_pair, hi) / n_pair
    two = n >= 2
    return {
        "mean": mean,
        "std": np.where(two, np.sqrt(np.maximum(var, 0.0)), np.nan),
        "rate_mean": rate_mean,
        "rate_std": np.where(two, np.sqrt(np.maximum(rate_var, 0.0)), np.nan),
        "rmssd": rmssd,
        "pnn50": pnn50,
        "count": n,
    }


def event_stats(
    events: np.ndarray, values: np.ndarray, window_start: np.ndarray, window_stop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per window ``[start, stop)``: the number of events and their mean value (0 if none)."""
    lo = np.searchsorted(events, window_start, "left")
    hi = np.searchsorted(events, window_stop, "left")
    count = (hi - lo).astype(np.float64)
    total = _range_sums(_prefix(np.asarray(values, dtype=np.float64)), lo, hi)
    return count, np.divide(total, count, out=np.zeros_like(total), where=count > 0)
