"""Hand-crafted per-window features of every WESAD signal, vectorised over windows.

Each modality is one flat feature vector per window (names in :data:`FEATURE_NAMES`):

* ``ecg`` / ``bvp``: heart rate and heart-rate variability from beats detected once over the
  whole recording (ECG: QRS energy of the 5-15 Hz band; BVP: systolic peaks of the 0.7-3.5 Hz
  band), aggregated over the inter-beat intervals (IBI) overlapping each window;
* ``eda_chest`` / ``eda_wrist``: level, spread and slope of the skin conductance, its tonic
  part (0.05 Hz low-pass) and phasic part (the residual), skin conductance responses (SCR:
  local maxima of the 1 Hz-smoothed level at least 0.01 microsiemens prominent);
* ``emg``: amplitude (RMS, mean absolute value, waveform length, zero crossings) and spectrum
  (mean, median and peak frequency) of the 20 Hz high-passed signal;
* ``resp``: breathing rate from breaths detected once (0.1-0.7 Hz band), breath-interval spread,
  amplitude;
* ``temp_chest`` / ``temp_wrist``: level, spread and slope of the skin temperature;
* ``acc_chest`` / ``acc_wrist``: per-axis mean (posture) and spread, magnitude statistics, jerk.

Chest signals are resampled to the rates their features need (EDA and temperature 4 Hz,
respiration 8 Hz, accelerometer 32 Hz) so both devices share the code. Statistics a window
cannot support (no beat detected) are NaN until :func:`impute_missing` fills them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from datamodules.wesad.layout import LABEL_RATE, WRIST_RATES
from datamodules.wesad.safe_pickle import WESADRecording
from datamodules.wesad.signal_ops import (
    band_filter,
    detect_peaks,
    event_stats,
    interval_stats,
    resample,
    slope,
    windowed,
)
from datamodules.wesad.windows import Windows

FEATURE_VERSION = 1
"""Bumped whenever a feature changes, so cached features of older versions are recomputed."""

HEART_NAMES = ("hr_mean", "hr_std", "ibi_mean_ms", "sdnn_ms", "rmssd_ms", "pnn50", "n_intervals")
EDA_NAMES = (
    "mean",
    "std",
    "min",
    "max",
    "slope",
    "tonic_mean",
    "tonic_slope",
    "phasic_std",
    "phasic_max",
    "scr_count",
    "scr_amplitude",
)
EMG_NAMES = (
    "rms",
    "mav",
    "waveform_length",
    "zero_crossings",
    "mean_freq",
    "median_freq",
    "peak_freq",
)
RESP_NAMES = ("rate_mean", "interval_std", "amplitude_range", "amplitude_std")
TEMP_NAMES = ("mean", "std", "min", "max", "slope")
ACC_NAMES = (
    "mean_x",
    "mean_y",
    "mean_z",
    "std_x",
    "std_y",
    "std_z",
    "magnitude_mean",
    "magnitude_std",
    "magnitude_min",
    "magnitude_max",
    "jerk",
)

PHYSIOLOGICAL = ("ecg", "eda_chest", "emg", "resp", "temp_chest", "bvp", "eda_wrist", "temp_wrist")
BEHAVIORAL = ("acc_chest", "acc_wrist")

FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "ecg": HEART_NAMES,
    "eda_chest": EDA_NAMES,
    "emg": EMG_NAMES,
    "resp": RESP_NAMES,
    "temp_chest": TEMP_NAMES,
    "bvp": (*HEART_NAMES, "signal_std", "pulse_amplitude"),
    "eda_wrist": EDA_NAMES,
    "temp_wrist": TEMP_NAMES,
    "acc_chest": ACC_NAMES,
    "acc_wrist": ACC_NAMES,
}

EDA_RATE, RESP_RATE, ACC_RATE = 4, 8, 32
FEATURE_RATES = (LABEL_RATE, *sorted(set(WRIST_RATES.values()) | {EDA_RATE, RESP_RATE, ACC_RATE}))
"""Every rate windows are cut at; a window must be a whole number of samples at each."""

BEAT_INTERVAL = (0.3, 2.0)
"""Accepted inter-beat intervals in seconds (200 to 30 beats per minute)."""
BREATH_INTERVAL = (1.5, 15.0)
"""Accepted breath intervals in seconds (40 to 4 breaths per minute)."""
SCR_MIN_AMPLITUDE = 0.01
"""Smallest skin conductance response in microsiemens, a common detection threshold."""
SCR_SPAN = 8
"""Seconds around a response within which its prominence is measured."""


Extractor = Callable[[np.ndarray, Windows], np.ndarray]
"""A feature function: (signal at its feature rate, windows) -> ``[W, F]``."""


def modality_shapes() -> dict[str, tuple[int, ...]]:
    """Per modality, the shape of one window's feature vector (no data needed)."""
    return {name: (len(features),) for name, features in FEATURE_NAMES.items()}


def _bounds(windows: Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        windows.start,
        windows.start + windows.length,
        windows.segment_start,
        windows.segment_stop,
    )


def heart_features(beats: np.ndarray, windows: Windows) -> np.ndarray:
    """Heart rate and HRV per window from beat times in seconds: ``[W, 7]`` (``HEART_NAMES``)."""
    stats = interval_stats(beats, *_bounds(windows), *BEAT_INTERVAL)
    return np.stack(
        [
            stats["rate_mean"],
            stats["rate_std"],
            1000 * stats["mean"],
            1000 * stats["std"],
            1000 * stats["rmssd"],
            stats["pnn50"],
            stats["count"],
        ],
        axis=1,
    )


def ecg_beats(ecg: np.ndarray, rate: int = LABEL_RATE) -> np.ndarray:
    """R-peak times (s): peaks of the smoothed 5-15 Hz energy, which is polarity-free."""
    qrs = band_filter(ecg, rate, 5.0, 15.0)
    energy = uniform_filter1d(qrs * qrs, int(0.1 * rate))
    times, _ = detect_peaks(energy, rate, BEAT_INTERVAL[0], 0.3, span=2.0)
    return times


def ecg_features(ecg: np.ndarray, windows: Windows) -> np.ndarray:
    """ECG features ``[W, 7]`` from the 700 Hz chest ECG ``[T]``."""
    return heart_features(ecg_beats(ecg), windows)


def bvp_features(bvp: np.ndarray, windows: Windows, rate: int = WRIST_RATES["BVP"]) -> np.ndarray:
    """BVP features ``[W, 9]``: heart features, band-passed signal std, mean pulse amplitude."""
    pulse = band_filter(bvp, rate, 0.7, 3.5)
    beats, prominence = detect_peaks(pulse, rate, BEAT_INTERVAL[0], 0.3, span=2.0)
    starts, size = windows.indices(rate)
    spread = windowed(pulse, starts, size, lambda w: w.std(-1, keepdims=True))
    _, amplitude = event_stats(beats, prominence, windows.start, windows.start + windows.length)
    return np.concatenate([heart_features(beats, windows), spread, amplitude[:, None]], axis=1)


def eda_features(eda: np.ndarray, windows: Windows, rate: int = EDA_RATE) -> np.ndarray:
    """EDA features ``[W, 11]`` (``EDA_NAMES``) from skin conductance ``[T]`` at ``rate``."""
    smooth = band_filter(eda, rate, None, 1.0)
    tonic = band_filter(smooth, rate, None, 0.05)
    phasic = smooth - tonic
    # SCRs are local maxima of the smoothed level itself: the phasic residual of a low-pass
    # tonic undershoots after each response, which would count as spurious peaks.
    peaks, properties = sps.find_peaks(
        smooth, distance=rate, prominence=SCR_MIN_AMPLITUDE, wlen=SCR_SPAN * rate
    )
    count, amplitude = event_stats(
        peaks / rate, properties["prominences"], windows.start, windows.start + windows.length
    )
    starts, size = windows.indices(rate)

    def level(w: np.ndarray) -> np.ndarray:
        return np.stack([w.mean(-1), w.std(-1), w.min(-1), w.max(-1), slope(w, rate)], axis=1)

    def tonic_stats(w: np.ndarray) -> np.ndarray:
        return np.stack([w.mean(-1), slope(w, rate)], axis=1)

    def phasic_stats(w: np.ndarray) -> np.ndarray:
        return np.stack([w.std(-1), w.max(-1)], axis=1)

    return np.concatenate(
        [
            windowed(eda, starts, size, level),
            windowed(tonic, starts, size, tonic_stats),
            windowed(phasic, starts, size, phasic_stats),
            count[:, None],
            amplitude[:, None],
        ],
        axis=1,
    )


def temp_features(temp: np.ndarray, windows: Windows, rate: int = EDA_RATE) -> np.ndarray:
    """Temperature features ``[W, 5]``: mean, std, min, max, slope (degrees per second)."""
    starts, size = windows.indices(rate)
    return windowed(
        temp,
        starts,
        size,
        lambda w: np.stack([w.mean(-1), w.std(-1), w.min(-1), w.max(-1), slope(w, rate)], axis=1),
    )


def emg_features(emg: np.ndarray, windows: Windows, rate: int = LABEL_RATE) -> np.ndarray:
    """EMG features ``[W, 7]`` from the 700 Hz chest EMG.

    Spectral features use the Hann-windowed power spectrum ``P(f)`` of each window:
    mean frequency ``sum f P / sum P``, median frequency (half the power below it), peak
    frequency ``argmax P``.
    """
    muscle = band_filter(emg, rate, 20.0, None, order=4)
    starts, size = windows.indices(rate)
    taper = np.hanning(size)
    freqs = np.fft.rfftfreq(size, 1.0 / rate)

    def stats(w: np.ndarray) -> np.ndarray:
        seconds = size / rate
        power = np.abs(np.fft.rfft(w * taper, axis=-1)) ** 2
        total = np.maximum(power.sum(-1), np.finfo(np.float64).tiny)
        cumulative = np.cumsum(power, axis=-1)
        return np.stack(
            [
                np.sqrt((w * w).mean(-1)),
                np.abs(w).mean(-1),
                np.abs(np.diff(w, axis=-1)).sum(-1) / seconds,
                (np.diff(np.signbit(w), axis=-1)).sum(-1) / seconds,
                (power * freqs).sum(-1) / total,
                freqs[np.argmax(cumulative >= 0.5 * total[:, None], axis=-1)],
                freqs[np.argmax(power, axis=-1)],
            ],
            axis=1,
        )

    return windowed(muscle, starts, size, stats)


def resp_features(resp: np.ndarray, windows: Windows, rate: int = RESP_RATE) -> np.ndarray:
    """Respiration features ``[W, 4]`` from the chest strain signal resampled to ``rate``."""
    breathing = band_filter(resp, rate, 0.1, 0.7)
    breaths, _ = detect_peaks(breathing, rate, BREATH_INTERVAL[0], 0.3, span=10.0)
    stats = interval_stats(breaths, *_bounds(windows), *BREATH_INTERVAL)
    starts, size = windows.indices(rate)
    amplitude = windowed(
        breathing, starts, size, lambda w: np.stack([np.ptp(w, axis=-1), w.std(-1)], axis=1)
    )
    return np.concatenate([stats["rate_mean"][:, None], stats["std"][:, None], amplitude], axis=1)


def acc_features(acc: np.ndarray, windows: Windows, rate: int = ACC_RATE) -> np.ndarray:
    """Accelerometer features ``[W, 11]`` from a 3-axis signal ``[T, 3]`` at ``rate``."""
    starts, size = windows.indices(rate)

    def stats(w: np.ndarray) -> np.ndarray:
        magnitude = np.sqrt((w * w).sum(1))
        return np.concatenate(
            [
                w.mean(-1),
                w.std(-1),
                np.stack(
                    [
                        magnitude.mean(-1),
                        magnitude.std(-1),
                        magnitude.min(-1),
                        magnitude.max(-1),
                        np.abs(np.diff(magnitude, axis=-1)).mean(-1) * rate,
                    ],
                    axis=1,
                ),
            ],
            axis=1,
        )

    return windowed(acc, starts, size, stats)


def impute_missing(features: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Fill non-finite entries from the nearest window of the same segment that has a value.

    Windows are in time order and a segment's windows are contiguous. An entry with no finite
    value in its segment takes the column's median over the recording (0 if there is none).
    A 5-s window at 8 breaths per minute may hold no whole breath; its neighbour's rate is the
    best estimate of its own.

    Args:
        features: ``[W, F]`` features of consecutive windows.
        group: Int ``[W]`` segment of each window (non-decreasing).

    Returns:
        ``[W, F]`` with every entry finite.
    """
    bad = ~np.isfinite(features)
    if not bad.any():
        return features
    w = len(features)
    index = np.arange(w)[:, None]
    first = np.searchsorted(group, group, "left")[:, None]
    last = np.searchsorted(group, group, "right")[:, None] - 1
    previous = np.maximum.accumulate(np.where(bad, -1, index), axis=0)
    following = np.minimum.accumulate(np.where(bad, w, index)[::-1], axis=0)[::-1]
    has_previous, has_following = previous >= first, following <= last
    use_previous = has_previous & (~has_following | (index - previous <= following - index))
    source = np.where(use_previous, previous, np.where(has_following, following, 0))
    filled = np.take_along_axis(features, np.clip(source, 0, w - 1), axis=0)
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(bad, np.nan, features), axis=0)
    fallback = np.broadcast_to(np.where(np.isfinite(median), median, 0.0), features.shape)
    found = has_previous | has_following
    return np.where(bad, np.where(found, filled, fallback), features)


def _chest(key: str, rate: int | None = None) -> Callable[[WESADRecording], np.ndarray]:
    """Reader of a chest signal (first channel unless it is ``ACC``), resampled to ``rate``."""

    def read(recording: WESADRecording) -> np.ndarray:
        values = recording.chest[key]
        values = values if key == "ACC" else values[:, 0]
        return values if rate is None else resample(values, LABEL_RATE, rate)

    return read


def _wrist(key: str) -> Callable[[WESADRecording], np.ndarray]:
    """Reader of a wrist signal at its own rate (first channel unless it is ``ACC``)."""

    def read(recording: WESADRecording) -> np.ndarray:
        values = recording.wrist[key]
        return values if key == "ACC" else values[:, 0]

    return read


EXTRACTORS: dict[str, tuple[Callable[[WESADRecording], np.ndarray], Extractor]] = {
    "ecg": (_chest("ECG"), ecg_features),
    "eda_chest": (_chest("EDA", EDA_RATE), eda_features),
    "emg": (_chest("EMG"), emg_features),
    "resp": (_chest("Resp", RESP_RATE), resp_features),
    "temp_chest": (_chest("Temp", EDA_RATE), temp_features),
    "bvp": (_wrist("BVP"), bvp_features),
    "eda_wrist": (_wrist("EDA"), partial(eda_features, rate=WRIST_RATES["EDA"])),
    "temp_wrist": (_wrist("TEMP"), partial(temp_features, rate=WRIST_RATES["TEMP"])),
    "acc_chest": (_chest("ACC", ACC_RATE), acc_features),
    "acc_wrist": (_wrist("ACC"), partial(acc_features, rate=WRIST_RATES["ACC"])),
}
"""Modality -> (signal reader, feature function). Chest signals other than ECG and EMG are
resampled to the rate their features use; wrist signals keep their own rates."""


def extract_modality(recording: WESADRecording, windows: Windows, name: str) -> np.ndarray:
    """Raw features ``[W, F]`` of one modality (may hold NaN; see :func:`impute_missing`)."""
    read, features = EXTRACTORS[name]
    return features(read(recording), windows)


def extract_features(recording: WESADRecording, windows: Windows) -> dict[str, np.ndarray]:
    """All modality features of one recording.

    Args:
        recording: The subject's validated signals.
        windows: Where the windows lie (see :func:`datamodules.wesad.windows.place_windows`).

    Returns:
        Modality -> float32 ``[W, F]`` with the columns of :data:`FEATURE_NAMES`, all finite.

    Raises:
        ValueError: If there are no windows.
    """
    if len(windows) == 0:
        raise ValueError(f"subject {recording.subject}: no windows to extract features from")
    _, segment = np.unique(windows.segment_start, return_inverse=True)
    out = {}
    for name in FEATURE_NAMES:
        values = impute_missing(extract_modality(recording, windows, name), segment)
        out[name] = values.astype(np.float32)
        # Checked after the cast: a finite float64 feature beyond 3.4e38 becomes inf in float32.
        finite = np.isfinite(out[name])
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise ValueError(
                f"subject {recording.subject}: feature {FEATURE_NAMES[name][column]!r} of "
                f"modality {name!r} is outside the float32 range in window {row} "
                f"({int((~finite).sum())} values); check the signals' units"
            )
    return out


def signal_lengths(recording: WESADRecording) -> dict[int, int]:
    """Samples of every signal at every feature rate, for dropping windows past a signal's end."""
    chest = len(recording.label)
    lengths = {LABEL_RATE: chest}
    for rate in (EDA_RATE, RESP_RATE, ACC_RATE):
        lengths[rate] = -(-chest * rate // LABEL_RATE)
    for key, rate in WRIST_RATES.items():
        lengths[rate] = min(lengths.get(rate, len(recording.wrist[key])), len(recording.wrist[key]))
    return lengths
