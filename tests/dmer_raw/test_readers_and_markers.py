"""Markers, file readers and alignment: what they read, and every bad-input error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from datamodules.dmer_raw.alignment import align_clip
from datamodules.dmer_raw.markers import ClipSpan, clip_spans, marker_onsets
from datamodules.dmer_raw.participant import participant_files
from datamodules.dmer_raw.readers import (
    channel_name,
    read_camera_events,
    read_eeg_edf,
    read_panas,
    read_wristband_csv,
)
from datamodules.dmer_raw.settings import ExtractSettings
from datamodules.dmer_raw.video import gray_frames, probe_video
from datamodules.io import DataFormatError


def _codes(pairs, length=400, held=1):
    codes = np.zeros(length, np.int64)
    for clip, (start, end) in pairs.items():
        codes[start : start + held] = clip + 10
        codes[end : end + held] = clip + 100
    return codes


ALL = {c: (10 * c + 2, 10 * c + 8) for c in range(32)}


@pytest.mark.parametrize("held", [1, 2])
def test_clip_spans(held):
    codes = _codes(ALL, held=held)
    codes[0] = 60  # resting-state marker, ignored
    spans = clip_spans(codes, "x")
    assert spans[0] == ClipSpan(2, 8) and spans[31] == ClipSpan(312, 318)
    indices, values = marker_onsets(codes)
    assert len(indices) == 65 and values[0] == 60


def test_marker_errors():
    codes = _codes(ALL)
    unterminated = codes.copy()
    unterminated[318] = 0  # clip 31 never ends
    with pytest.raises(DataFormatError, match=r"f\.csv: clip 31 start marker 41 .* no end"):
        clip_spans(unterminated, "f.csv")
    interrupted = codes.copy()
    interrupted[5] = 60  # another marker between clip 0's start and end
    with pytest.raises(DataFormatError, match=r"clip 0 .* found code 60"):
        clip_spans(interrupted, "f.csv")
    missing = _codes({c: s for c, s in ALL.items() if c != 7})
    with pytest.raises(DataFormatError, match=r"no start/end markers for clips \[7\]"):
        clip_spans(missing, "f.csv")


def test_alignment_keeps_the_last_common_whole_seconds():
    spans = {"a": ClipSpan(100, 100 + 3090), "b": ClipSpan(10, 10 + 41)}
    steps, aligned = align_clip(spans, {"a": 300.0, "b": 4.0}, 1.0, 5, "s1 clip 0")
    assert steps == 10  # min(10.3 s, 10.25 s) -> 10 whole seconds
    assert aligned["a"] == ClipSpan(190, 3190) and aligned["b"] == ClipSpan(11, 51)
    with pytest.raises(DataFormatError, match=r"s1 clip 0: the clip lasts 4 s .* 5-s peripheral"):
        align_clip({"a": ClipSpan(0, 1200)}, {"a": 300.0}, 1.0, 5, "s1 clip 0")


def test_channel_names():
    assert channel_name("EEG P3-Pz") == "P3"
    assert channel_name("Trigger") == "Trigger"
    assert channel_name("EEG CM-Pz") == "CM"


def test_participant_files_and_readers(raw_dir):
    files = participant_files(raw_dir / "1", ExtractSettings())
    assert {k: p.name for k, p in files.items()} == {
        "eeg": "eeg.edf",
        "gsr": "raw_gsr.csv",
        "ppg": "raw_ppg.csv",
        "camera": "camera.csv",
        "video": "face.mp4",
        "panas": "panas.csv",
    }
    eeg = read_eeg_edf(files["eeg"], 300.0, "Trigger")
    assert eeg.channels[:2] == ["Fp1", "Fp2"] and "Trigger" not in eeg.channels
    assert len(clip_spans(eeg.codes, "eeg")) == 32
    with pytest.raises(
        DataFormatError, match=r"eeg\.edf: header sampling rate 300 Hz, expected 256"
    ):
        read_eeg_edf(files["eeg"], 256.0, "Trigger")
    with pytest.raises(DataFormatError, match="no trigger channel 'TRG'"):
        read_eeg_edf(files["eeg"], 300.0, "TRG")
    gsr = read_wristband_csv(files["gsr"], 4.0, "--gsr-rate")
    assert len(clip_spans(gsr.codes, "gsr")) == 32
    with pytest.raises(DataFormatError, match=r"raw_gsr\.csv: column 0 \(time\) .* expected 8 Hz"):
        read_wristband_csv(files["gsr"], 8.0, "--gsr-rate")
    assert len(read_camera_events(files["camera"], 30.0)) == 32
    ratings = read_panas(files["panas"])
    assert ratings.shape == (32, 10) and ratings.min() >= 1 and ratings.max() <= 5
    assert probe_video(files["video"], 30.0) > 0
    with pytest.raises(DataFormatError, match=r"face\.mp4: frame rate 30 fps .* expected 25"):
        probe_video(files["video"], 25.0)


def test_missing_and_unreadable_files(raw_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(raw_dir / "1", partial, ignore=shutil.ignore_patterns("panas.csv"))
    with pytest.raises(DataFormatError, match=r"partial: no panas file matching 'panas\.csv'"):
        participant_files(partial, ExtractSettings())
    (partial / "other.edf").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"2 eeg files match '\*\.edf'"):
        participant_files(partial, ExtractSettings())
    garbage = tmp_path / "face.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataFormatError, match=r"face\.mp4: unreadable video"):
        probe_video(garbage, 30.0)
    with pytest.raises(DataFormatError, match=r"face\.mp4: unreadable video"):
        list(gray_frames(garbage, [(0, 10)]))
    bad_edf = tmp_path / "eeg.edf"
    bad_edf.write_bytes(b"0" * 300)
    with pytest.raises(DataFormatError, match=r"eeg\.edf: not a readable EDF file"):
        read_eeg_edf(bad_edf, 300.0, "Trigger")
    video = participant_files(raw_dir / "1", ExtractSettings())["video"]
    frames = probe_video(video, 30.0)
    with pytest.raises(DataFormatError, match=f"ends at frame {frames}"):
        list(gray_frames(video, [(frames - 5, frames + 5)]))


def test_csv_content_errors(tmp_path):
    camera = tmp_path / "camera.csv"
    camera.write_text("0,10,100\n0,100,200\n")
    with pytest.raises(DataFormatError, match="no recording-start event"):
        read_camera_events(camera, 30.0)
    camera.write_text("-1,0,0\n" + "".join(f"{c},{c + 10},{c}000\n" for c in range(32)))
    with pytest.raises(DataFormatError, match="clip 0 has no end event"):
        read_camera_events(camera, 30.0)
    panas = tmp_path / "panas.csv"
    panas.write_text("clip,Inspired\n0,3\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['alert'"):
        read_panas(panas)
    items = "Inspired,Alert,Excited,Enthusiastic,Determined,Afraid,Upset,Nervous,Scared,Distressed"
    rows = [f"{c}," + ",".join(["3"] * 10) for c in range(32)]
    rows[4] = "4," + ",".join(["3"] * 9 + ["9"])
    panas.write_text("\n".join([f"clip,{items}", *rows]) + "\n")
    with pytest.raises(
        DataFormatError, match=r"column 'Distressed' row 4 is 9\.0; expected a rating 1-5"
    ):
        read_panas(panas)
    gsr = tmp_path / "raw_gsr.csv"
    gsr.write_text("0,1.0,0\n250,abc,0\n")
    with pytest.raises(DataFormatError, match=r"raw_gsr\.csv: row 1 column 1 is not a number"):
        read_wristband_csv(gsr, 4.0, "--gsr-rate")


def test_video_frames_decode_exactly_and_crop(raw_dir):
    from datamodules.dmer_raw.synthetic_raw import video_frame
    from datamodules.dmer_raw.video import to_gray

    video = raw_dir / "1" / "face.mp4"
    got = list(gray_frames(video, [(20, 22), (10, 11)], box=(2, 3, 8, 6)))
    assert [k for k, _ in got] == [1, 0, 0]  # in frame order: range 1 (frame 10) first
    for (_, frame), index in zip(got, (10, 20, 21), strict=True):
        np.testing.assert_array_equal(frame, to_gray(video_frame(1, index, 24, 16)[3:9, 2:10]))
    swapped = next(gray_frames(video, [(10, 11)], swap_red_blue=True))[1]
    np.testing.assert_array_equal(swapped, to_gray(video_frame(1, 10, 24, 16), True))
    with pytest.raises(DataFormatError, match=r"face box \(20, 0, 8, 6\) lies outside the 24 x 16"):
        list(gray_frames(video, [(0, 1)], box=(20, 0, 8, 6)))
