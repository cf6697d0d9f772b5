"""EEG differential entropy: exact on sinusoids, 0.5 ln(2 pi e var) on band-limited noise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from datamodules.dmer_raw.eeg_features import band_variance, differential_entropy
from datamodules.dmer_raw.settings import DEFAULT_BANDS
from datamodules.dmer_raw.synthetic_raw import band_limited_noise

RATE = 300.0


def _gaussian_de(variance):
    return 0.5 * np.log(2 * np.pi * np.e * variance)


def test_sinusoid_band_variance_is_exact():
    # A sinusoid on a bin centre: its Hann main lobe (3 bins) lies inside 8-14 Hz, so the band
    # holds all of its power A^2 / 2 (Parseval with the window-power normalisation).
    t = np.arange(int(RATE * 10)) / RATE
    x = (3.0 * np.sin(2 * np.pi * 11.0 * t + 0.3))[None]
    variance = band_variance(x, RATE, 1.0, DEFAULT_BANDS)
    np.testing.assert_allclose(variance[:, 0, 2], 4.5, rtol=1e-9)
    np.testing.assert_allclose(variance[:, 0, [0, 1, 4]], 0.0, atol=1e-12)
    de = differential_entropy(x, RATE, 1.0, DEFAULT_BANDS)
    np.testing.assert_allclose(de[:, 2], _gaussian_de(4.5), rtol=1e-9)


@pytest.mark.parametrize(("low", "high", "band"), [(9, 13, 2), (15, 30, 3), (32, 48, 4)])
def test_band_limited_noise_de_matches_gaussian_entropy(low, high, band):
    rng = np.random.default_rng(7)
    variance = 4.0
    x = band_limited_noise(rng, int(RATE * 300), RATE, low, high, variance)[None]
    # Tolerance 1: the mean per-window band variance is unbiased up to window leakage; 300
    # windows give ~2% sampling error, 0.03 nats on the entropy.
    estimated = band_variance(x, RATE, 1.0, DEFAULT_BANDS)[:, 0, band].mean()
    assert abs(_gaussian_de(estimated) - _gaussian_de(variance)) < 0.03
    # Tolerance 2: the mean of the per-window DE sits below by the log-chi-square (Jensen) bias
    # of a 1-s window, under 0.15 nats for these bands (measured: 0.04-0.11).
    de = differential_entropy(x, RATE, 1.0, DEFAULT_BANDS)[:, band]
    assert -0.15 < de.mean() - _gaussian_de(variance) < 0.0


def test_channel_major_layout():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 600))
    flat = differential_entropy(x, RATE, 1.0, DEFAULT_BANDS)
    assert flat.shape == (2, 15)
    # columns 5c..5c+4 are channel c's five bands
    for channel in range(3):
        alone = differential_entropy(x[channel : channel + 1], RATE, 1.0, DEFAULT_BANDS)
        np.testing.assert_allclose(flat[:, 5 * channel : 5 * channel + 5], alone)
    # scaling a signal by 10 multiplies every band variance by 100: +ln(10) nats
    np.testing.assert_allclose(
        differential_entropy(10 * x, RATE, 1.0, DEFAULT_BANDS) - flat, np.log(10.0), rtol=1e-9
    )


def _authors_de(x, rate, bands):
    """The authors' computation written out window by window (test reference)."""
    n = int(rate)
    windows = x.shape[1] // n
    out = np.zeros((windows, len(bands), x.shape[0]))
    hann = scipy.signal.windows.hann(n)  # symmetric, as scipy.signal.hann was
    for w in range(windows):
        spectrum = np.fft.fft(x[:, w * n : (w + 1) * n] * hann, n=256)
        energy = np.abs(spectrum[:, :128])
        for b, (lo, hi) in enumerate(bands):
            first, last = int(np.floor(lo / rate * 256)), int(np.floor(hi / rate * 256))
            out[w, b] = np.mean(energy[:, first : last + 1] ** 2, axis=1)
    de = 0.5 * np.log(out) + 0.5 * np.log(2 * np.pi * np.e / round(rate / 256))
    # the MATLAB reshape of (windows, bands, channels) to (windows, bands * channels) is
    # column-major: column = band + 5 * channel
    return de.transpose(0, 2, 1).reshape(windows, -1)


def test_reference_mode_reproduces_the_authors_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 900)) * 20
    got = differential_entropy(x, RATE, 1.0, DEFAULT_BANDS, reference=True)
    np.testing.assert_allclose(got, _authors_de(x, RATE, DEFAULT_BANDS), rtol=1e-12)
    # ... and differs from the corrected estimate (unscaled power, truncated window)
    corrected = differential_entropy(x, RATE, 1.0, DEFAULT_BANDS)
    assert np.abs(got - corrected).min() > 1.0
