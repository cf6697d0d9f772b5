r"""GSR (28) and PPG (27) statistics of sliding windows, vectorised over windows.

Per window :math:`w` (5 s, 1-s hop by default), the seven statistics
:math:`s(z) = (\mathrm{median}, \mathrm{mean}, \mathrm{std}, \min, \max,
\tfrac1n\#\{z_i = \min z\}, \tfrac1n\#\{z_i = \max z\})` (``std`` with :math:`1/n`) of
:math:`w`, of its first difference and of its second difference (21 values), then six
statistics of its spectrum (median, mean, std, min, max, max - min); GSR adds the mean of
Welch's power spectral density of the window (one Hann segment of the window's length,
constant detrend). The PPG is first band-passed (3rd-order Butterworth, 0.5-8 Hz, zero phase)
over the whole clip.

Spectrum statistics: ``corrected`` mode takes them over the amplitude spectrum
:math:`|X_k|`, :math:`k = 0..\lfloor n/2 \rfloor`. The authors' script takes them over the
complex two-sided FFT (NumPy orders complex numbers by real, then imaginary part) and the
feature matrix keeps their real parts: ``reference`` mode reproduces that.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

GSR_COLUMNS = 28
PPG_COLUMNS = 27


def sliding_windows(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """``[T]`` -> ``[N, length]`` windows starting every ``hop`` samples (a view)."""
    if len(x) < length:
        return np.empty((0, length), dtype=x.dtype)
    return sliding_window_view(x, length)[::hop]


def statistics(z: np.ndarray) -> np.ndarray:
    """The seven statistics of each row of ``z [N, n]`` -> ``[N, 7]``."""
    low = z.min(axis=1, keepdims=True)
    high = z.max(axis=1, keepdims=True)
    return np.column_stack(
        [
            np.median(z, axis=1),
            z.mean(axis=1),
            z.std(axis=1),
            low[:, 0],
            high[:, 0],
            (z == low).mean(axis=1),
            (z == high).mean(axis=1),
        ]
    )


def spectrum_statistics(w: np.ndarray, reference: bool = False) -> np.ndarray:
    """Median, mean, std, min, max and range of each window's spectrum -> ``[N, 6]``."""
    if not reference:
        amplitude = np.abs(np.fft.rfft(w, axis=1))
        low, high = amplitude.min(axis=1), amplitude.max(axis=1)
        return np.column_stack(
            [
                np.median(amplitude, axis=1),
                amplitude.mean(axis=1),
                amplitude.std(axis=1),
                low,
                high,
                high - low,
            ]
        )
    spectrum = np.sort(np.fft.fft(w, axis=1), axis=1)  # complex: by real, then imaginary part
    n = spectrum.shape[1]
    median = 0.5 * (spectrum[:, (n - 1) // 2] + spectrum[:, n // 2])
    low, high = spectrum[:, 0], spectrum[:, -1]
    complex_stats = np.column_stack(
        [median, spectrum.mean(axis=1), spectrum.std(axis=1), low, high, high - low]
    )
    return complex_stats.real


def window_features(w: np.ndarray, reference: bool = False) -> np.ndarray:
    """The 27 statistics shared by GSR and PPG of windows ``w [N, n]``."""
    first = np.diff(w, axis=1)
    second = np.diff(first, axis=1)
    return np.column_stack(
        [statistics(w), statistics(first), statistics(second), spectrum_statistics(w, reference)]
    )


def gsr_features(
    signal: np.ndarray, rate: float, window: float, hop: float, reference: bool = False
) -> np.ndarray:
    """The 28 GSR features ``[N, 28]`` of the windows of one clip's signal."""
    length, step = round(window * rate), round(hop * rate)
    w = sliding_windows(np.asarray(signal, dtype=np.float64), length, step)
    if len(w) == 0:
        return np.empty((0, GSR_COLUMNS))
    _, psd = scipy.signal.welch(w, fs=rate, nperseg=length, axis=1)
    return np.column_stack([window_features(w, reference), psd.mean(axis=1)])


def ppg_features(
    signal: np.ndarray,
    rate: float,
    window: float,
    hop: float,
    band: tuple[float, float] = (0.5, 8.0),
    reference: bool = False,
) -> np.ndarray:
    """The 27 PPG features ``[N, 27]`` of one clip's signal, band-passed first."""
    b, a = scipy.signal.butter(3, [band[0] / (0.5 * rate), band[1] / (0.5 * rate)], btype="band")
    filtered = scipy.signal.filtfilt(b, a, np.asarray(signal, dtype=np.float64))
    length, step = round(window * rate), round(hop * rate)
    w = sliding_windows(filtered, length, step)
    if len(w) == 0:
        return np.empty((0, PPG_COLUMNS))
    return window_features(w, reference)
