import numpy as np
import pytest

from datamodules.wesad.features import (
    BEHAVIORAL,
    FEATURE_NAMES,
    PHYSIOLOGICAL,
    eda_features,
    emg_features,
    extract_features,
    impute_missing,
    modality_shapes,
    signal_lengths,
)
from datamodules.wesad.layout import ORDER_CONDITIONS, pickle_path
from datamodules.wesad.quest import order_key
from datamodules.wesad.safe_pickle import load_recording
from datamodules.wesad.signal_ops import interval_stats, slope
from datamodules.wesad.windows import Windows, find_segments, place_windows


@pytest.fixture(scope="module")
def extracted(fake_wesad):
    root, truth = fake_wesad
    out = {}
    for subject in truth:
        recording = load_recording(pickle_path(root, subject))
        windows = place_windows(find_segments(recording.label), 5.0, 1.0, signal_lengths(recording))
        out[subject] = (windows, extract_features(recording, windows))
    return out


def _rounds(truth):
    seen = {}
    for entry in truth.heart_rate:
        condition = ORDER_CONDITIONS[order_key(entry)]
        occurrence = seen.get(condition, 0)
        seen[condition] = occurrence + 1
        yield entry, condition, occurrence


def test_shapes_and_finite(extracted):
    shapes = modality_shapes()
    assert set(shapes) == set(PHYSIOLOGICAL) | set(BEHAVIORAL)
    for windows, features in extracted.values():
        assert set(features) == set(shapes)
        for name, values in features.items():
            assert values.shape == (len(windows), *shapes[name])
            assert values.dtype == np.float32
            assert np.isfinite(values).all(), name


@pytest.mark.parametrize("modality", ["ecg", "bvp"])
def test_heart_rate_recovered(extracted, fake_wesad, modality):
    truth = fake_wesad[1]
    column = FEATURE_NAMES[modality].index("hr_mean")
    for subject, (windows, features) in extracted.items():
        for entry, condition, occurrence in _rounds(truth[subject]):
            mine = (windows.condition == condition) & (windows.occurrence == occurrence)
            error = np.abs(features[modality][mine, column] - truth[subject].heart_rate[entry])
            assert error.max() < 3.0, (subject, entry, error.max())
        # the IBI column agrees with the rate column
        ibi = features[modality][:, FEATURE_NAMES[modality].index("ibi_mean_ms")]
        np.testing.assert_allclose(60000 / ibi, features[modality][:, column], rtol=0.02)


def test_breathing_rate_recovered(extracted, fake_wesad):
    truth = fake_wesad[1]
    for subject, (windows, features) in extracted.items():
        for entry, condition, occurrence in _rounds(truth[subject]):
            mine = (windows.condition == condition) & (windows.occurrence == occurrence)
            error = np.abs(features["resp"][mine, 0] - truth[subject].breathing_rate[entry])
            assert error.max() < 1.0, (subject, entry, error.max())


def test_stress_raises_skin_conductance(extracted):
    for windows, features in extracted.values():
        tonic = features["eda_chest"][:, FEATURE_NAMES["eda_chest"].index("tonic_mean")]
        assert tonic[windows.condition == 2].mean() > tonic[windows.condition == 1].mean() + 1.0
        magnitude = features["acc_chest"][:, FEATURE_NAMES["acc_chest"].index("magnitude_mean")]
        np.testing.assert_allclose(magnitude, 1.0, atol=0.05)


def _windows(n, length, hop=1.0, segment=None):
    start = np.arange(n) * hop
    segment = np.zeros(n) if segment is None else segment
    return Windows(
        start=start,
        length=length,
        segment_start=np.full(n, 0.0),
        segment_stop=np.full(n, 1e9),
        condition=np.ones(n, dtype=np.int64),
        occurrence=np.zeros(n, dtype=np.int64),
        position=np.arange(n),
    )


def test_emg_spectrum_and_amplitude_of_a_sine():
    rate, seconds = 700, 20
    t = np.arange(rate * seconds) / rate
    rng = np.random.default_rng(0)
    emg = 0.5 * np.sin(2 * np.pi * 120 * t) + 1e-3 * rng.standard_normal(len(t))
    features = emg_features(emg, _windows(10, 5.0))
    names = FEATURE_NAMES["emg"]
    for name in ("mean_freq", "median_freq", "peak_freq"):
        np.testing.assert_allclose(features[:, names.index(name)], 120, atol=1.0)
    np.testing.assert_allclose(features[:, names.index("rms")], 0.5 / np.sqrt(2), rtol=0.02)
    np.testing.assert_allclose(features[:, names.index("zero_crossings")], 240, rtol=0.02)


def test_scr_count_and_amplitude():
    rate, seconds = 4, 60
    t = np.arange(rate * seconds) / rate
    eda = np.full(len(t), 3.0)
    onsets = [10.0, 32.0]
    for onset in onsets:
        k = np.clip(t - onset, 0, None)
        eda += 0.2 * np.where(t > onset, (np.exp(-k / 2) - np.exp(-k / 0.75)) / 0.368, 0)
    windows = _windows(1, 60.0)
    features = eda_features(eda, windows, rate)
    names = FEATURE_NAMES["eda_chest"]
    assert features[0, names.index("scr_count")] == len(onsets)
    assert 0.1 < features[0, names.index("scr_amplitude")] < 0.3
    np.testing.assert_allclose(features[0, names.index("mean")], eda.mean(), rtol=1e-3)


def test_interval_stats_match_a_per_window_reference():
    rng = np.random.default_rng(5)
    events = np.cumsum(rng.uniform(0.25, 1.3, 400))
    starts = rng.uniform(0, events[-1], 50)
    stops = starts + 5.0
    seg_start, seg_stop = starts - rng.uniform(0, 20, 50), stops + rng.uniform(0, 20, 50)
    stats = interval_stats(events, starts, stops, seg_start, seg_stop, 0.3, 1.2)
    for i in range(50):
        k = np.arange(1, len(events))
        inside = (
            (events[k] > starts[i])
            & (events[k - 1] < stops[i])
            & (events[k - 1] >= seg_start[i])
            & (events[k] <= seg_stop[i])
        )
        d = events[k] - events[k - 1]
        ok = inside & (d >= 0.3) & (d <= 1.2)
        assert stats["count"][i] == ok.sum()
        if ok.sum() >= 2:
            np.testing.assert_allclose(stats["mean"][i], d[ok].mean())
            np.testing.assert_allclose(stats["std"][i], d[ok].std(), atol=1e-9)
            np.testing.assert_allclose(stats["rate_mean"][i], (60 / d[ok]).mean())
            pairs = ok[1:] & ok[:-1]
            if pairs.any():
                diffs = np.diff(d)[pairs]
                np.testing.assert_allclose(stats["rmssd"][i], np.sqrt((diffs**2).mean()))
                np.testing.assert_allclose(stats["pnn50"][i], (np.abs(diffs) > 0.05).mean())


def test_slope_matches_polyfit():
    rng = np.random.default_rng(1)
    windows = rng.standard_normal((4, 20))
    expected = [np.polyfit(np.arange(20) / 4.0, row, 1)[0] for row in windows]
    np.testing.assert_allclose(slope(windows, 4.0), expected)


def test_impute_fills_from_nearest_window_of_the_same_segment():
    values = np.array([[np.nan], [2.0], [np.nan], [np.nan], [7.0], [np.nan], [np.nan]])
    group = np.array([0, 0, 0, 0, 0, 1, 1])
    filled = impute_missing(values, group)
    # window 3 is closer to window 4; segment 1 has no value: the recording median
    assert filled[:, 0].tolist() == [2.0, 2.0, 2.0, 7.0, 7.0, 4.5, 4.5]
