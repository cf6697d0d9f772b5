r"""EEG differential entropy per band on non-overlapping windows.

For a Gaussian signal of variance :math:`\sigma^2` the differential entropy is
:math:`h = \tfrac12 \ln(2\pi e \sigma^2)`. Per window, channel and band, ``corrected`` mode
estimates the band variance from a Hann-windowed periodogram scaled to a one-sided power
spectral density :math:`S(f)`,

.. math:: \sigma_b^2 = \sum_{f_{lo} \le f_k < f_{hi}} S(f_k)\,\Delta f,
   \qquad S(f_k) = \frac{c_k |X_k|^2}{f_s \sum_n w_n^2},

(:math:`c_k = 2` except at DC and Nyquist, :math:`\Delta f = f_s / N_{fft}`), so that the DE of
band-limited Gaussian noise is :math:`\tfrac12\ln(2\pi e\,\mathrm{var})`.

``reference`` mode reproduces the authors' ``fea4eeg.py``: a symmetric Hann window of the full
window length, then a 256-point FFT, which keeps only the first 256 samples of the 300-sample
window; the mean of :math:`|X_k|^2` over bins ``floor(lo/fs*256) .. floor(hi/fs*256)`` (both
ends included, so neighbouring bands share a bin), unscaled; and
:math:`h = \tfrac12\ln P + \tfrac12\ln(2\pi e / \mathrm{round}(f_s/256))`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal

REFERENCE_NFFT = 256


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    """``[C, T]`` -> ``[W, C, length]`` non-overlapping windows (the tail is dropped)."""
    count = x.shape[1] // length
    return x[:, : count * length].reshape(x.shape[0], count, length).transpose(1, 0, 2)


def band_variance(
    x: np.ndarray, rate: float, window: float, bands: Sequence[tuple[float, float]], nfft: int = 0
) -> np.ndarray:
    r"""Band variance :math:`\sigma_b^2` ``[W, C, B]`` of ``x [C, T]`` (see the module docstring).

    Args:
        x: Signals ``[C, T]``.
        rate: Sampling rate (Hz).
        window: Window length (s).
        bands: ``(low, high)`` edges in Hz (low inclusive, high exclusive).
        nfft: FFT length (0 or less than the window: the window length; more zero-pads).
    """
    length = round(window * rate)
    nfft = max(nfft, length)
    taper = scipy.signal.windows.hann(length, sym=False)
    spectrum = np.fft.rfft(_windows(x, length) * taper, n=nfft, axis=-1)
    scale = np.full(spectrum.shape[-1], 2.0)
    scale[0] = 1.0
    if nfft % 2 == 0:
        scale[-1] = 1.0
    density = scale * np.abs(spectrum) ** 2 / (rate * np.sum(taper**2))
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    masks = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in bands], axis=1)
    return density @ masks.astype(np.float64) * (rate / nfft)


def differential_entropy(
    x: np.ndarray,
    rate: float,
    window: float,
    bands: Sequence[tuple[float, float]],
    nfft: int = 0,
    reference: bool = False,
) -> np.ndarray:
    """Differential entropy ``[W, C * B]`` (channel-major: a channel's bands are adjacent).

    Args:
        x: Signals ``[C, T]`` (the DMER features use microvolts).
        rate: Sampling rate (Hz).
        window: Window length (s); ``T // (window * rate)`` windows.
        bands: ``(low, high)`` edges in Hz.
        nfft: FFT length of ``corrected`` mode (see :func:`band_variance`).
        reference: The authors' computation (see the module docstring).
    """
    if reference:
        power = _reference_band_power(x, rate, window, bands)
        de = 0.5 * np.log(power) + 0.5 * np.log(2 * np.pi * np.e / round(rate / REFERENCE_NFFT))
    else:
        de = 0.5 * np.log(2 * np.pi * np.e * band_variance(x, rate, window, bands, nfft))
    return de.reshape(de.shape[0], -1)


def _reference_band_power(
    x: np.ndarray, rate: float, window: float, bands: Sequence[tuple[float, float]]
) -> np.ndarray:
    length = round(window * rate)
    tapered = _windows(x, length) * scipy.signal.windows.hann(length, sym=True)
    energy = np.abs(np.fft.fft(tapered, n=REFERENCE_NFFT, axis=-1)[..., : REFERENCE_NFFT // 2])
    power = []
    for lo, hi in bands:
        first = int(np.floor(lo / rate * REFERENCE_NFFT))
        last = int(np.floor(hi / rate * REFERENCE_NFFT))
        power.append(np.mean(energy[..., first : last + 1] ** 2, axis=-1))
    return np.stack(power, axis=-1)
