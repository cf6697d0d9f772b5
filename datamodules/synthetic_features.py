"""Feature forms of the synthetic DMER generator: latent affect -> EEG, GSR, PPG and face features.

Every function is vectorised over leading axes (clips, rows) and draws its noise from a numpy
``Generator`` passed in, so the generator in :mod:`datamodules.synthetic` is deterministic.
The equations are documented in ``docs/synthetic-data.md``; latent vectors have the components
``(p, n, a)``: positive activation, negative activation, arousal.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter

#: The 18 DSI-24 channels left after dropping A1/A2 and the auxiliary inputs (Pz is the
#: reference). The real files' channel order is not documented; this is the generator's order.
EEG_CHANNELS = (
    "Fp1", "Fp2", "Fz", "F3", "F4", "F7", "F8", "Cz", "C3",
    "C4", "T3", "T4", "T5", "T6", "P3", "P4", "O1", "O2",
)  # fmt: skip
EEG_BANDS_HZ = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 49))
GSR_HZ = 4
PPG_HZ = 100
WINDOW_S = 5
LBP_BINS = 256
LBP_PLANES = 3
_LOG_2PI_E = float(np.log(2 * np.pi * np.e))


def _channel_masks() -> dict[str, np.ndarray]:
    names = np.array(EEG_CHANNELS)
    side = np.array([0 if n.endswith("z") else (-1 if int(n[-1]) % 2 else 1) for n in names])
    return {
        "side": side.astype(np.float64),  # -1 left, +1 right, 0 midline
        "frontal": np.char.startswith(names, "F").astype(np.float64),
        "temporal": np.char.startswith(names, "T").astype(np.float64),
        "posterior": (np.char.startswith(names, "P") | np.char.startswith(names, "O")).astype(
            np.float64
        ),
    }


def eeg_maps() -> tuple[np.ndarray, np.ndarray]:
    """Baseline log band power ``[18, 5]`` and latent loading maps ``[3, 18, 5]`` for (p, n, a).

    Baseline: a 1/f spectrum ``2 - 1.2 ln f_band`` with posterior alpha, frontal theta and
    temporal (muscle) gamma peaks. Loadings: arousal lowers alpha (most posteriorly) and raises
    beta and temporal/frontal gamma; valence ``v = p - n`` lowers left relative to right frontal
    alpha (frontal asymmetry); negative activation raises frontal theta; positive activation adds
    temporal gamma (smiling muscles).
    """
    m = _channel_masks()
    centres = np.array([np.sqrt(lo * hi) for lo, hi in EEG_BANDS_HZ])
    base = np.broadcast_to(2.0 - 1.2 * np.log(centres), (len(EEG_CHANNELS), 5)).copy()
    base[:, 2] += 0.6 * m["posterior"]
    base[:, 1] += 0.2 * m["frontal"]
    base[:, 4] += 0.3 * m["temporal"]
    loads = np.zeros((3, len(EEG_CHANNELS), 5))
    loads[2, :, 2] = -0.35 * (1.0 + 0.3 * m["posterior"])
    loads[2, :, 3] = 0.2
    loads[2, :, 4] = 0.3 * np.maximum(m["temporal"], m["frontal"])
    asymmetry = 0.12 * m["side"] * m["frontal"]  # alpha change per unit of valence
    loads[0, :, 2] += asymmetry
    loads[1, :, 2] -= asymmetry
    loads[1, :, 1] += 0.2 * m["frontal"]
    loads[0, :, 4] += 0.1 * m["temporal"]
    return base, loads


def eeg_differential_entropy(
    z: np.ndarray, offset: np.ndarray, loads: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Differential entropy ``[..., 18, 5]`` of 1-s EEG windows at latent states ``z [..., 3]``.

    ``L = base + offset + sum_k z_k M_k + e_artifact(ch) + e`` is the log band power (``offset``
    broadcastable to ``[..., 18, 5]``: subject and session offsets; ``loads`` ``[3, 18, 5]``:
    the subject's loading maps ``M``); the DE of a Gaussian band signal of variance ``exp(L)``
    is ``(ln(2 pi e) + L) / 2``.
    """
    base, _ = eeg_maps()
    shape = z.shape[:-1]
    log_power = (
        base
        + offset
        + np.einsum("...k,kcb->...cb", z, loads)
        + rng.normal(0.0, 0.15, (*shape, len(EEG_CHANNELS), 1))  # broadband artefact per channel
        + rng.normal(0.0, 0.25, (*shape, len(EEG_CHANNELS), 5))
    )
    return 0.5 * (_LOG_2PI_E + log_power)


def upsample(z: np.ndarray, rate: int) -> np.ndarray:
    """Linearly interpolate per-second values ``[J, S, K]`` to ``rate`` Hz: ``[J, S*rate, K]``."""
    seconds = z.shape[1]
    t = np.arange(seconds * rate) / rate
    left = np.floor(t).astype(np.int64)
    right = np.minimum(left + 1, seconds - 1)
    w = (t - left)[None, :, None]
    return z[:, left] * (1.0 - w) + z[:, right] * w


def sliding_windows(signal: np.ndarray, rate: int, first_s: int, count: int) -> np.ndarray:
    """``count`` windows of ``WINDOW_S`` seconds with a 1-s hop from second ``first_s``.

    ``signal [J, T]`` -> ``[J, count, WINDOW_S * rate]`` (a strided view).
    """
    view = np.lib.stride_tricks.sliding_window_view(signal, WINDOW_S * rate, axis=-1)
    return view[:, first_s * rate : (first_s + count) * rate : rate]


def window_statistics(x: np.ndarray) -> np.ndarray:
    """22 generic statistics of windows ``x [..., W]`` -> ``[..., 22]``.

    Level and spread (mean, std, min, max, range, median, 10th and 90th percentile, skewness,
    excess kurtosis), first differences (mean, std, mean absolute, max, min), second differences
    (mean absolute, std), the least-squares slope and the std of its residual, the rate of local
    maxima, the log energy ``ln mean(x^2)`` and the fraction of rising samples.
    """
    eps = 1e-12
    mean = x.mean(-1)
    centred = x - mean[..., None]
    m2 = (centred**2).mean(-1)
    std = np.sqrt(m2)
    q10, median, q90 = np.percentile(x, [10, 50, 90], axis=-1)
    d1, d2 = np.diff(x, axis=-1), np.diff(x, n=2, axis=-1)
    t = np.arange(x.shape[-1]) - (x.shape[-1] - 1) / 2
    slope = (centred * t).sum(-1) / (t**2).sum()
    residual = centred - slope[..., None] * t
    maxima = ((d1[..., :-1] > 0) & (d1[..., 1:] <= 0)).sum(-1) / x.shape[-1]
    columns = [
        mean, std, x.min(-1), x.max(-1), x.max(-1) - x.min(-1), median, q10, q90,
        (centred**3).mean(-1) / (m2 + eps) ** 1.5,
        (centred**4).mean(-1) / (m2 + eps) ** 2 - 3.0,
        d1.mean(-1), d1.std(-1), np.abs(d1).mean(-1), d1.max(-1), d1.min(-1),
        np.abs(d2).mean(-1), d2.std(-1),
        slope, residual.std(-1), maxima,
        np.log((x**2).mean(-1) + eps), (d1 > 0).mean(-1),
    ]  # fmt: skip
    return np.stack(columns, axis=-1)


def gsr_signal(
    z4: np.ndarray, level: np.ndarray, responsivity: float, rng: np.random.Generator
) -> np.ndarray:
    """Skin conductance (microsiemens) at 4 Hz from latent states ``z4 [J, T, 3]``.

    Tonic level ``level * exp(0.12 a)`` (``level`` ``[J, 1]``: subject and session); phasic
    responses are Bernoulli events of rate ``0.15 exp(0.9 a + 0.6 n)`` per second with
    log-normal amplitudes, shaped by a Bateman kernel ``exp(-t / 2.0 s) - exp(-t / 0.75 s)``
    (two first-order recursive filters).
    """
    _, n, a = np.moveaxis(z4, -1, 0)
    rate = 0.15 * np.exp(0.9 * a + 0.6 * n)
    events = rng.random(a.shape) < np.minimum(rate / GSR_HZ, 1.0)
    impulses = events * rng.lognormal(np.log(0.15), 0.5, a.shape)
    decay, rise = np.exp(-1.0 / (GSR_HZ * 2.0)), np.exp(-1.0 / (GSR_HZ * 0.75))
    phasic = lfilter([1.0], [1.0, -decay], impulses, axis=-1) - lfilter(
        [1.0], [1.0, -rise], impulses, axis=-1
    )
    phasic /= 0.5  # approximate kernel peak, so amplitudes read as microsiemens
    tonic = level * np.exp(0.12 * a)
    return tonic + responsivity * phasic + rng.normal(0.0, 0.003, a.shape)


def gsr_features(windows: np.ndarray) -> np.ndarray:
    """28 GSR statistics of 5-s windows ``[..., 20]``: the generic 22 plus 6 EDA-specific.

    Extra: log mean level, count of response onsets (slope crossing 0.01 uS/sample upwards),
    total rise (sum of positive differences), largest 1-s rise, mean area above the window
    minimum and the coefficient of variation.
    """
    d1 = np.diff(windows, axis=-1)
    onsets = ((d1[..., 1:] > 0.01) & (d1[..., :-1] <= 0.01)).sum(-1)
    one_second = windows[..., GSR_HZ:] - windows[..., :-GSR_HZ]
    mean = windows.mean(-1)
    extra = [
        np.log(np.maximum(mean, 1e-6)),
        onsets.astype(np.float64),
        np.clip(d1, 0.0, None).sum(-1),
        one_second.max(-1),
        (windows - windows.min(-1, keepdims=True)).mean(-1),
        windows.std(-1) / np.maximum(mean, 1e-6),
    ]
    return np.concatenate([window_statistics(windows), np.stack(extra, -1)], -1)


def ppg_signal(
    z100: np.ndarray,
    heart_rate: float,
    reactivity: float,
    amplitude: np.ndarray,
    breathing_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Photoplethysmogram at 100 Hz from latent states ``z100 [J, T, 3]``.

    Heart rate ``HR_s + reactivity (6 a + 3 n)`` bpm plus respiratory sinus arrhythmia; pulse
    phase ``phi = 2 pi cumsum(HR / 60) / fs``; waveform ``cos phi + 0.45 cos(2 phi - 0.9) +
    0.15 cos(3 phi - 1.8)`` (systolic peak, dicrotic notch) scaled by ``A_s exp(-0.25 a - 0.2 n)``
    (vasoconstriction; ``A_s`` ``[J, 1]``: subject and session), plus respiratory baseline
    wander and sensor noise.
    """
    clips, samples = z100.shape[:2]
    _, n, a = np.moveaxis(z100, -1, 0)
    t = np.arange(samples) / PPG_HZ
    breath = np.sin(2 * np.pi * breathing_hz * t + rng.uniform(0, 2 * np.pi, (clips, 1)))
    bpm = heart_rate + reactivity * (6.0 * a + 3.0 * n) + 1.5 * breath
    phase = 2 * np.pi * np.cumsum(bpm / 60.0, axis=-1) / PPG_HZ
    phase += rng.uniform(0, 2 * np.pi, (clips, 1))
    wave = np.cos(phase) + 0.45 * np.cos(2 * phase - 0.9) + 0.15 * np.cos(3 * phase - 1.8)
    pulse = amplitude * np.exp(-0.25 * a - 0.2 * n)
    return (
        pulse * wave
        + 0.3 * amplitude * breath
        + rng.normal(0.0, 0.05 * amplitude, (clips, samples))
    )


def ppg_features(windows: np.ndarray) -> np.ndarray:
    """27 PPG statistics of 5-s windows ``[..., 500]``: the generic 22 plus 5 spectral/pulse.

    Extra: dominant frequency in 0.7-3.5 Hz (in bpm), log power of that band, spectral entropy
    over 0.1-5 Hz, pulse rate from counting upward crossings of ``mean + 0.5 std`` (bpm) and log
    power of the respiratory band 0.15-0.4 Hz.
    """
    centred = windows - windows.mean(-1, keepdims=True)
    power = np.abs(np.fft.rfft(centred * np.hanning(windows.shape[-1]), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(windows.shape[-1], 1.0 / PPG_HZ)
    cardiac = (freqs >= 0.7) & (freqs <= 3.5)
    band = (freqs >= 0.1) & (freqs <= 5.0)
    resp = (freqs >= 0.15) & (freqs <= 0.4)
    share = power[..., band] / (power[..., band].sum(-1, keepdims=True) + 1e-12)
    # Pulses: upward crossings of mean + 0.5 std by the 90-ms moving average (smoothing keeps
    # sensor noise from crossing the threshold several times per beat).
    smooth = uniform_filter1d(windows, 9, axis=-1)
    above = smooth > smooth.mean(-1, keepdims=True) + 0.5 * smooth.std(-1, keepdims=True)
    peaks = above[..., 1:] & ~above[..., :-1]
    extra = [
        60.0 * freqs[cardiac][np.argmax(power[..., cardiac], axis=-1)],
        np.log(power[..., cardiac].sum(-1) + 1e-12),
        -(share * np.log(share + 1e-12)).sum(-1),
        peaks.sum(-1) * 60.0 / WINDOW_S,
        np.log(power[..., resp].sum(-1) + 1e-12),
    ]
    return np.concatenate([window_statistics(windows), np.stack(extra, -1)], -1)


def uniform_lbp_patterns() -> np.ndarray:
    """Boolean ``[256]``: the 58 uniform LBP codes (at most two circular 0/1 transitions)."""
    bits = (np.arange(LBP_BINS)[:, None] >> np.arange(8)) & 1
    return (bits != np.roll(bits, 1, axis=1)).sum(1) <= 2


def lbp_top_histograms(
    z: np.ndarray,
    offset: np.ndarray,
    expression: np.ndarray,
    rng: np.random.Generator,
    concentration: float = 3000.0,
) -> np.ndarray:
    """LBP-TOP histograms ``[..., 3 * 256]`` (XY, XT, YT planes) at latent states ``z [..., 3]``.

    ``pi = softmax(offset + E . z + e)`` per plane, with ``offset`` broadcastable to
    ``[..., 3, 256]`` (the generic face, the subject's identity and the clip's pose and
    lighting) and ``E`` ``[3, 3, 256]`` the subject's expression maps; the histogram is
    a Dirichlet draw ``h ~ Dir(concentration * pi)`` (the sampling noise of counting codes over a
    finite number of pixel neighbourhoods), so every plane is non-negative and sums to 1.
    """
    logits = (
        offset
        + np.einsum("...k,kpb->...pb", z, expression)
        + rng.normal(0.0, 0.15, (*z.shape[:-1], LBP_PLANES, LBP_BINS))
    )
    logits -= logits.max(-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    draws = rng.standard_gamma(concentration * probs)
    hist = draws / np.maximum(draws.sum(-1, keepdims=True), 1e-300)
    return hist.reshape(*z.shape[:-1], LBP_PLANES * LBP_BINS)
