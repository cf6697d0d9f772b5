"""Synthetic WESAD recordings: signals shaped like the real ones, with known ground truth.

Used by :mod:`datamodules.wesad.fixtures` to write fake subjects. Per rated round the heart
rate, breathing rate and skin conductance level are known, so tests can check that features
recover them:

* ECG: a P-QRS-T template at every beat of a known heart rate (with respiratory modulation);
* BVP: systolic and diastolic pulse waves at the same beats, 0.25 s later;
* EDA: a tonic level per round with skin conductance responses (bi-exponential) on top;
* respiration: a sine at a known breathing rate;
* EMG: broadband noise with bursts; temperature: slow drift; accelerometers: gravity plus
  movement bursts;
* ``label``: the study conditions separated by transient gaps, then reading tasks (6, 7);
* PANAS ratings for every rated round, 26 items after the stress round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from datamodules.wesad.layout import (
    LABEL_RATE,
    ORDER_CONDITIONS,
    PANAS_ITEMS_24,
    PANAS_ITEMS_26,
    STRESS,
    WRIST_RATES,
    valence_group,
)
from datamodules.wesad.quest import order_key

ORDER = ("Base", "TSST", "Medi 1", "Fun", "Medi 2", "sRead", "fRead")
"""The protocol order of the fake subjects (one of the orders used in WESAD)."""

LABEL_CODES = {"Base": 1, "TSST": 2, "Medi 1": 4, "Fun": 3, "Medi 2": 4, "sRead": 6, "fRead": 7}
HEART_RATE = {"Base": 68.0, "TSST": 92.0, "Medi 1": 62.0, "Fun": 76.0, "Medi 2": 60.0}
BREATHING_RATE = {"Base": 14.0, "TSST": 20.0, "Medi 1": 8.0, "Fun": 15.0, "Medi 2": 9.0}
SCL = {"Base": 2.0, "TSST": 4.5, "Medi 1": 1.8, "Fun": 2.6, "Medi 2": 1.6}
DURATION_FACTOR = {"Base": 1.2, "TSST": 1.0, "Medi 1": 0.8, "Fun": 0.9, "Medi 2": 0.8}
READING_SECONDS = 12.0
GAP_SECONDS = 6.0
LEAD_SECONDS = 8.0


@dataclass
class FakeSubject:
    """Ground truth of one fake subject.

    Attributes:
        subject: The name (``"S2"``).
        segments: ``# ORDER`` entry -> (first, one past last) 700 Hz sample of its label run.
        spans: ``# ORDER`` entry -> (start, end) in seconds.
        heart_rate: Rated entry -> mean heart rate in beats per minute.
        breathing_rate: Rated entry -> breathing rate in breaths per minute.
        panas: Rated entry -> the ratings written on its ``# PANAS`` line, in file order.
        duration: Recording length in seconds.
    """

    subject: str
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    heart_rate: dict[str, float] = field(default_factory=dict)
    breathing_rate: dict[str, float] = field(default_factory=dict)
    panas: dict[str, list[float]] = field(default_factory=dict)
    duration: float = 0.0

    def items(self, entry: str) -> tuple[str, ...]:
        """The PANAS item names of a rated entry's line."""
        return PANAS_ITEMS_26 if len(self.panas[entry]) == len(PANAS_ITEMS_26) else PANAS_ITEMS_24


def _impulses(
    times: np.ndarray, rate: float, n: int, weights: np.ndarray | float = 1.0
) -> np.ndarray:
    """Impulses at fractional sample positions, split linearly over the two nearest samples."""
    position = np.asarray(times) * rate
    base = np.floor(position).astype(np.int64)
    frac = position - base
    weights = np.broadcast_to(weights, position.shape)
    train = np.zeros(n + 2)
    np.add.at(train, np.clip(base, 0, n), weights * (1 - frac))
    np.add.at(train, np.clip(base + 1, 0, n + 1), weights * frac)
    return train[:n]


def _place(
    times: np.ndarray,
    kernel: np.ndarray,
    offset: int,
    rate: float,
    n: int,
    weights: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Sum of ``kernel`` copies whose sample ``offset`` lies at each of ``times``."""
    out = sps.fftconvolve(_impulses(times, rate, n, weights), kernel)
    return out[offset : offset + n]


def _events_from_rate(rate_per_minute: np.ndarray, rate: float) -> np.ndarray:
    """Times where the integrated event rate crosses an integer (a beat or a breath)."""
    phase = np.cumsum(rate_per_minute) / (60.0 * rate)
    return (np.flatnonzero(np.diff(np.floor(phase))) + 1) / rate


def _ecg_template(rate: float) -> tuple[np.ndarray, int]:
    t = np.arange(-0.35, 0.5, 1.0 / rate)
    waves = [
        (-0.2, 0.15, 0.025),
        (-0.03, -0.15, 0.01),
        (0.0, 1.2, 0.012),
        (0.03, -0.25, 0.01),
        (0.25, 0.35, 0.05),
    ]
    template = sum(a * np.exp(-0.5 * ((t - c) / w) ** 2) for c, a, w in waves)
    return template, round(0.35 * rate)


def _timeline(
    seconds_per_condition: float, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """Start and end (s) of every ``# ORDER`` entry: a lead-in, then rounds split by gaps."""
    durations = {}
    for entry in ORDER:
        base = (
            READING_SECONDS
            if entry not in DURATION_FACTOR
            else seconds_per_condition * DURATION_FACTOR[entry]
        )
        durations[entry] = round((base + rng.uniform(0, 1)) * LABEL_RATE) / LABEL_RATE
    spans, t = {}, LEAD_SECONDS
    for entry in ORDER:
        spans[entry] = (t, t + durations[entry])
        t += durations[entry] + GAP_SECONDS
    return spans


def _piecewise(
    t: np.ndarray, spans: dict[str, tuple[float, float]], values: dict[str, float], default: float
) -> np.ndarray:
    out = np.full(len(t), default)
    for entry, value in values.items():
        start, stop = spans[entry]
        out[(t >= start) & (t < stop)] = value
    return out


def _movement(t: np.ndarray) -> np.ndarray:
    """Bursts of 1.8 Hz body movement, the same for both devices."""
    return np.sin(2 * np.pi * 1.8 * t) * (np.sin(2 * np.pi * t / 97) > 0.9)


def _chest_signals(
    t: np.ndarray,
    label: np.ndarray,
    spans: dict[str, tuple[float, float]],
    beats: np.ndarray,
    breath_phase: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """RespiBAN signals at 700 Hz: ``ACC`` ``[N, 3]``, the others ``[N, 1]``."""
    n = len(t)
    template, lead = _ecg_template(LABEL_RATE)
    ecg = _place(beats, template, lead, LABEL_RATE, n)
    ecg += 0.1 * np.sin(2 * np.pi * breath_phase) + 0.02 * rng.standard_normal(n)
    resp = 2.0 * np.sin(2 * np.pi * breath_phase) + 0.05 * rng.standard_normal(n)

    # Tonic level: the round's level smoothed over 20 s plus a slow drift; responses on top,
    # three times as frequent under stress.
    scl = uniform_filter1d(_piecewise(t, spans, SCL, 2.2), 20 * LABEL_RATE, mode="nearest")
    scr_rate = np.where(label == STRESS, 6.0, 2.0) / 60.0 / LABEL_RATE
    scr_times = np.flatnonzero(rng.random(n) < scr_rate) / LABEL_RATE
    k = np.arange(0, 12.0, 1.0 / LABEL_RATE)
    scr_kernel = np.exp(-k / 2.0) - np.exp(-k / 0.75)
    scr_kernel /= scr_kernel.max()
    amplitudes = rng.uniform(0.05, 0.3, len(scr_times))
    eda = scl + 0.05 * t / t[-1] + _place(scr_times, scr_kernel, 0, LABEL_RATE, n, amplitudes)

    band = sps.butter(4, [20, 300], "bandpass", fs=LABEL_RATE, output="sos")
    burst_times = np.flatnonzero(rng.random(n) < 4 / 60 / LABEL_RATE) / LABEL_RATE
    bursts = _place(burst_times, np.hanning(LABEL_RATE), 0, LABEL_RATE, n)
    emg = (0.01 + 0.2 * bursts) * sps.sosfilt(band, rng.standard_normal(n))

    temp = 34.0 + 0.3 * np.sin(2 * np.pi * t / 600) - 0.2 * (label == STRESS)
    temp += 0.01 * rng.standard_normal(n)
    movement = _movement(t)
    acc = np.stack([0.85 + 0.1 * movement, -0.05 + 0.05 * movement, -0.5 + 0.02 * movement], 1)
    acc += 0.01 * rng.standard_normal((n, 3))
    chest = {"ACC": acc, "ECG": ecg, "EMG": emg, "EDA": eda, "Temp": temp, "Resp": resp}
    return {key: value.reshape(n, -1) for key, value in chest.items()}


def _wrist_signals(
    duration: float, chest_eda: np.ndarray, beats: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Empatica E4 signals at their own rates, ``[n, 1]`` (``ACC`` ``[n, 3]``)."""
    wrist = {}
    t_chest = np.arange(len(chest_eda)) / LABEL_RATE
    for key, rate in WRIST_RATES.items():
        m = round(duration * rate)
        t = np.arange(m) / rate
        if key == "BVP":
            tp = np.arange(0, 0.8, 1.0 / rate)
            pulse = np.exp(-0.5 * ((tp - 0.15) / 0.06) ** 2)
            pulse += 0.4 * np.exp(-0.5 * ((tp - 0.4) / 0.08) ** 2)
            # The pulse reaches the wrist 0.25 s after the R peak.
            value = 50 * _place(beats + 0.25, pulse - pulse.mean(), 0, rate, m)
            value += rng.standard_normal(m)
        elif key == "EDA":
            value = 0.4 * np.interp(t, t_chest, chest_eda) + 0.002 * rng.standard_normal(m)
        elif key == "TEMP":
            value = 32.0 + 0.5 * np.sin(2 * np.pi * t / 900) + 0.02 * rng.standard_normal(m)
        else:
            moving = _movement(t)
            value = np.stack([50 + 8 * moving, 10 + 4 * moving, 30 - 6 * moving], 1)
            value += rng.standard_normal((m, 3))
        wrist[key] = value.reshape(m, -1)
    return wrist


def _panas_ratings(rng: np.random.Generator) -> dict[str, list[float]]:
    """Ratings 1-5 of every rated round; negative items rate higher after the stress round."""
    ratings = {}
    for entry in ORDER:
        condition = ORDER_CONDITIONS.get(order_key(entry))
        if condition is None:
            continue
        items = PANAS_ITEMS_26 if condition == STRESS else PANAS_ITEMS_24
        boost = [int(condition == STRESS and valence_group(item) == 1) for item in items]
        ratings[entry] = [
            float(min(5, r + b)) for r, b in zip(rng.integers(1, 4, len(items)), boost, strict=True)
        ]
    return ratings


def make_subject(
    subject: str, seconds_per_condition: float = 60.0, seed: int = 0
) -> tuple[dict[str, Any], FakeSubject]:
    """Build one fake subject: the dict stored in ``SX.pkl`` and the ground truth."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(-4, 4)
    spans = _timeline(seconds_per_condition, rng)
    duration = spans[ORDER[-1]][1] + GAP_SECONDS
    n = round(duration * LABEL_RATE)
    t = np.arange(n) / LABEL_RATE
    truth = FakeSubject(subject=subject, duration=n / LABEL_RATE, spans=spans)
    label = np.zeros(n, dtype=np.int32)
    for entry, (start, stop) in spans.items():
        first, last = round(start * LABEL_RATE), round(stop * LABEL_RATE)
        label[first:last] = LABEL_CODES[entry]
        truth.segments[entry] = (first, last)
    truth.heart_rate = {k: v + offset for k, v in HEART_RATE.items()}
    truth.breathing_rate = {k: v + offset / 4 for k, v in BREATHING_RATE.items()}
    truth.panas = _panas_ratings(rng)

    # Rates are integrated into phases, so beats and breaths follow rate changes smoothly;
    # the heart rate swings 3 % with breathing (respiratory sinus arrhythmia).
    breath_phase = np.cumsum(_piecewise(t, spans, truth.breathing_rate, 12.0)) / (60 * LABEL_RATE)
    heart = _piecewise(t, spans, truth.heart_rate, 70.0)
    beats = _events_from_rate(heart * (1 + 0.03 * np.sin(2 * np.pi * breath_phase)), LABEL_RATE)

    chest = _chest_signals(t, label, spans, beats, breath_phase, rng)
    wrist = _wrist_signals(duration, chest["EDA"][:, 0], beats, rng)
    data = {"signal": {"chest": chest, "wrist": wrist}, "label": label, "subject": subject}
    return data, truth
