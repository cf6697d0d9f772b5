"""GSR/PPG statistics against values computed by hand."""

from __future__ import annotations

import numpy as np
import scipy.signal

from datamodules.dmer_raw.peripheral_features import (
    gsr_features,
    ppg_features,
    spectrum_statistics,
    statistics,
    window_features,
)


def test_seven_statistics_by_hand():
    # w = 1 3 3 2 5: median 3, mean 14/5, std sqrt(mean((w - 2.8)^2)) = sqrt(8.8 / 5),
    # min 1 (1 of 5 samples), max 5 (1 of 5)
    np.testing.assert_allclose(
        statistics(np.array([[1.0, 3, 3, 2, 5]])),
        [[3, 2.8, np.sqrt(8.8 / 5), 1, 5, 0.2, 0.2]],
    )
    # ties: min 0 twice, max 4 twice in 1 4 0 4 0 2 -> median (1 + 2) / 2
    got = statistics(np.array([[1.0, 4, 0, 4, 0, 2]]))
    np.testing.assert_allclose(got[0, [0, 5, 6]], [1.5, 2 / 6, 2 / 6])


def test_spectrum_statistics_by_hand():
    # FFT of 1 1 1 1 is 4 0 0 0. Corrected: |rfft| = 4 0 0 -> median 0, mean 4/3,
    # std sqrt(((8/3)^2 + 2 (4/3)^2) / 3) = sqrt(32) / 3, min 0, max 4, range 4.
    ones = np.ones((1, 4))
    np.testing.assert_allclose(
        spectrum_statistics(ones), [[0, 4 / 3, np.sqrt(32) / 3, 0, 4, 4]], atol=1e-12
    )
    # Reference (complex, sorted by real part): 0 0 0 4 -> median 0, mean 1,
    # std sqrt((1 + 1 + 1 + 9) / 4) = sqrt(3), min 0, max 4, range 4.
    np.testing.assert_allclose(
        spectrum_statistics(ones, reference=True), [[0, 1, np.sqrt(3), 0, 4, 4]], atol=1e-12
    )
    # FFT of 0 1 0 -1 is 0, -2j, 0, 2j. Corrected: |rfft| = 0 2 0 -> median 0, mean 2/3,
    # std sqrt(8/9), min 0, max 2, range 2. Reference: sorted -2j 0 0 2j, real parts kept:
    # median 0, mean 0, std sqrt((4 + 4) / 4) (std of complex values is real), min/max/range 0.
    wave = np.array([[0.0, 1, 0, -1]])
    np.testing.assert_allclose(
        spectrum_statistics(wave), [[0, 2 / 3, np.sqrt(8 / 9), 0, 2, 2]], atol=1e-12
    )
    np.testing.assert_allclose(
        spectrum_statistics(wave, reference=True), [[0, 0, np.sqrt(2), 0, 0, 0]], atol=1e-12
    )


def test_gsr_windows_and_columns_by_hand():
    # rate 1 Hz, 5-s windows, 1-s hop: a 7-sample signal gives 3 windows
    signal = np.array([1.0, 3, 3, 2, 5, 5, 5])
    got = gsr_features(signal, rate=1.0, window=5.0, hop=1.0)
    assert got.shape == (3, 28)
    np.testing.assert_allclose(got[0, :7], [3, 2.8, np.sqrt(8.8 / 5), 1, 5, 0.2, 0.2])
    # first difference of window 0: 2 0 -1 3 -> median 1, mean 1, std sqrt(14/4 - 1)
    np.testing.assert_allclose(got[0, 7:14], [1, 1, np.sqrt(2.5), -1, 3, 0.25, 0.25])
    # second difference: -2 -1 4 -> median -1, mean 1/3, min -2, max 4
    np.testing.assert_allclose(got[0, [14, 15, 17, 18]], [-1, 1 / 3, -2, 4])
    # window 2 is 3 2 5 5 5: the max 5 holds 3 of 5 samples
    np.testing.assert_allclose(got[2, [3, 4, 5, 6]], [2, 5, 0.2, 0.6])
    # a constant window has a zero (constant-detrended) Welch PSD
    flat = gsr_features(np.full(20, 7.0), rate=4.0, window=5.0, hop=1.0)
    assert flat.shape == (1, 28) and flat[0, 27] == 0.0
    # the last column is the mean of scipy's Welch PSD of the window
    window = np.arange(20.0) ** 0.5
    _, psd = scipy.signal.welch(window, fs=4.0, nperseg=20)
    np.testing.assert_allclose(gsr_features(window, 4.0, 5.0, 1.0)[0, 27], psd.mean())


def test_ppg_is_band_passed_then_windowed():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(800)
    got = ppg_features(signal, rate=100.0, window=5.0, hop=1.0)
    assert got.shape == (4, 27)
    b, a = scipy.signal.butter(3, [0.5 / 50, 8 / 50], btype="band")
    filtered = scipy.signal.filtfilt(b, a, signal)
    np.testing.assert_allclose(got[1], window_features(filtered[None, 100:600])[0])
    # shorter than one window: no rows
    assert ppg_features(signal[:400], 100.0, 5.0, 1.0).shape == (0, 27)
