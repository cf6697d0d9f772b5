import numpy as np
import pytest

from datamodules.wesad.layout import LABEL_RATE, ORDER_CONDITIONS, pickle_path
from datamodules.wesad.quest import order_key
from datamodules.wesad.safe_pickle import load_recording
from datamodules.wesad.windows import (
    check_window_settings,
    find_segments,
    place_windows,
    trial_id,
)


@pytest.mark.parametrize(("window", "hop"), [(5.0, 1.0), (2.5, 0.75), (10.0, 3.0)])
def test_window_counts_match_condition_durations(fake_wesad, window, hop):
    root, truth = fake_wesad
    subject = next(iter(truth))
    recording = load_recording(pickle_path(root, subject))
    windows = place_windows(find_segments(recording.label), window, hop)
    seen = {}
    for entry, (first, last) in truth[subject].segments.items():
        if order_key(entry) not in ORDER_CONDITIONS:
            continue
        condition = ORDER_CONDITIONS[order_key(entry)]
        occurrence = seen.get(condition, 0)
        seen[condition] = occurrence + 1
        width, step = round(window * LABEL_RATE), round(hop * LABEL_RATE)
        expected = (last - first - width) // step + 1
        mine = (windows.condition == condition) & (windows.occurrence == occurrence)
        assert mine.sum() == expected, entry
        np.testing.assert_array_equal(windows.position[mine], np.arange(expected))
        np.testing.assert_allclose(windows.start[mine][0], first / LABEL_RATE)
    assert len(windows) == sum(
        (b - a - round(window * LABEL_RATE)) // round(hop * LABEL_RATE) + 1
        for e, (a, b) in truth[subject].segments.items()
        if order_key(e) in ORDER_CONDITIONS
    )


def test_windows_never_straddle_conditions(fake_wesad):
    root, truth = fake_wesad
    recording = load_recording(pickle_path(root, next(iter(truth))))
    windows = place_windows(find_segments(recording.label), 5.0, 1.0)
    first, width = windows.indices(LABEL_RATE)
    for start, condition in zip(first, windows.condition, strict=True):
        assert (recording.label[start : start + width] == condition).all()
    assert set(np.unique(windows.condition)) == {1, 2, 3, 4}
    assert (windows.start >= windows.segment_start).all()
    assert (windows.start + windows.length <= windows.segment_stop + 1e-9).all()


def test_rounds_merge_across_transient_gaps_only():
    second = LABEL_RATE
    label = np.concatenate(
        [
            np.zeros(second),
            np.full(7 * second, 1),
            np.zeros(second),  # transient gap: the baseline round goes on
            np.full(6 * second, 1),
            np.full(6 * second, 4),
            np.full(2 * second, 6),  # a reading task: the next meditation is a new round
            np.full(6 * second, 4),
            np.full(3 * second, 4 + 3),
        ]
    ).astype(np.int32)
    segments = find_segments(label)
    assert segments.condition.tolist() == [1, 1, 4, 4]
    assert segments.occurrence.tolist() == [0, 0, 0, 1]
    windows = place_windows(segments, 5.0, 1.0)
    base = windows.condition == 1
    # 3 windows in the 7-s run, 2 in the 6-s run, positions running on across the gap
    assert windows.position[base].tolist() == [0, 1, 2, 3, 4]
    assert [
        trial_id(c, o) for c, o in zip(segments.condition, segments.occurrence, strict=True)
    ] == [1, 1, 4, 5]


def test_windows_past_a_signal_end_are_dropped():
    label = np.full(20 * LABEL_RATE, 2, dtype=np.int32)
    segments = find_segments(label)
    full = place_windows(segments, 5.0, 1.0)
    assert len(full) == 16
    short = place_windows(segments, 5.0, 1.0, {4: 4 * 18})  # wrist EDA ends 2 s early
    assert len(short) == 14
    assert short.start.max() + 5.0 <= 18.0


def test_repeated_non_meditation_round_is_an_error():
    with pytest.raises(ValueError, match="only meditation"):
        trial_id(2, 1)


@pytest.mark.parametrize(
    ("window", "hop", "message"),
    [(5.1, 1.0, "5.1"), (0.25, 1.0, "at least 2"), (5.0, 0.0, "positive"), (5.0, 1e-4, "hop")],
)
def test_window_settings_are_checked(window, hop, message):
    with pytest.raises(ValueError, match=message):
        check_window_settings(window, hop, [700, 64, 32, 8, 4])
