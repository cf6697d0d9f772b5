"""The whole extraction on generated recordings: layout, values, resume, failures, training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from dmer_raw_constants import CLIP_SECONDS, FAST, SUBJECTS

from datamodules.dmer import DMERDataModule, load_dmer_file
from datamodules.dmer_raw.cli import main
from datamodules.dmer_raw.lbp_top import lbp_top
from datamodules.dmer_raw.markers import clip_spans
from datamodules.dmer_raw.peripheral_features import gsr_features
from datamodules.dmer_raw.pipeline import run_extraction
from datamodules.dmer_raw.readers import read_camera_events, read_panas, read_wristband_csv
from datamodules.dmer_raw.synthetic_raw import SCALP, video_frame
from datamodules.dmer_raw.video import probe_video, to_gray
from datamodules.io import DataFormatError

ROWS_PER_CLIP = CLIP_SECONDS - 4


def _quiet(message):
    del message


def test_output_has_the_dmer_layout(extracted, raw_dir):
    for subject in SUBJECTS:
        data = scipy.io.loadmat(extracted / f"{subject}.mat")
        assert data["feas"].shape == (32 * ROWS_PER_CLIP, 913)
        assert data["vids"].shape == (32 * ROWS_PER_CLIP, 1)
        np.testing.assert_array_equal(data["vids"][:, 0], np.repeat(np.arange(32), ROWS_PER_CLIP))
        np.testing.assert_array_equal(
            data["dis_label"], read_panas(raw_dir / str(subject) / "panas.csv")
        )
        provenance = json.loads((extracted / f"{subject}.provenance.json").read_text())
        assert provenance["settings"] == FAST.to_dict()
        assert provenance["rows"] == 32 * ROWS_PER_CLIP
        assert provenance["eeg_channels"] == list(SCALP)
        assert set(provenance["inputs"]) == {"eeg", "gsr", "ppg", "camera", "video", "panas"}
        assert all(len(v["sha256"]) == 64 for v in provenance["inputs"].values())
        assert provenance["versions"]["mne"] and provenance["versions"]["numpy"]
    datamodule = DMERDataModule(str(extracted), subjects=list(SUBJECTS), num_folds=2)
    datamodule.setup("fit")
    assert len(datamodule.load_table().target) == 2 * 32 * ROWS_PER_CLIP
    report = json.loads((extracted / "extract-report.json").read_text())
    assert {r["status"] for r in report.values()} == {"done"}
    assert not list(extracted.glob(".*tmp"))


def test_eeg_entropy_of_the_known_band_noise(extracted):
    # O1 carries Gaussian noise in 9-13 Hz of variance 25 uV^2 (+ white background, 0.01 uV^2
    # in 8-14 Hz) through EDF quantisation, re-referencing, filters and DE: the mean band
    # variance exp(2 DE) / (2 pi e) over 192 one-second windows is within 12% (about 3
    # standard errors of a 1-s estimate) of 25.01.
    column = 5 * SCALP.index("O1") + 2
    de = np.concatenate(
        [
            load_dmer_file(extracted / f"{s}.mat", s)
            .features["eeg"]
            .numpy()
            .reshape(-1, 90)[:, column]
            for s in SUBJECTS
        ]
    )
    variance = np.exp(2 * de.astype(np.float64)) / (2 * np.pi * np.e)
    assert variance.mean() == pytest.approx(25.01, rel=0.12)
    # a channel without band noise sits far lower (white background only)
    other = load_dmer_file(extracted / "1.mat", 1).features["eeg"].numpy()[:, SCALP.index("Fp1"), 2]
    assert np.exp(2 * other.astype(np.float64)).mean() / (2 * np.pi * np.e) < 0.1


def test_face_and_gsr_rows_follow_markers_and_alignment(extracted, raw_dir):
    folder = raw_dir / "1"
    feas = scipy.io.loadmat(extracted / "1.mat")["feas"]
    clip = 5
    rows = feas[ROWS_PER_CLIP * clip : ROWS_PER_CLIP * (clip + 1)]
    # video: the clip's last CLIP_SECONDS * 30 frames; row r is the 30-frame segment 4 + r
    span = read_camera_events(folder / "camera.csv", 30.0)[clip]
    end = min(span.end, probe_video(folder / "face.mp4", 30.0))
    first = end - 30 * CLIP_SECONDS + 30 * 4
    frames = np.stack([to_gray(video_frame(1, i, 24, 16)) for i in range(first, first + 30)])
    np.testing.assert_allclose(rows[0, 145:], lbp_top(frames), atol=1e-7)
    # GSR: the 5-s windows over the clip's last CLIP_SECONDS seconds before its end marker
    gsr = read_wristband_csv(folder / "raw_gsr.csv", 4.0, "")
    g = clip_spans(gsr.codes, "gsr")[clip]
    expected = gsr_features(gsr.values[g.end - 4 * CLIP_SECONDS : g.end], 4.0, 5.0, 1.0)
    np.testing.assert_allclose(rows[:, 90:118], expected, rtol=1e-6, atol=1e-9)


def test_resume_skips_finished_and_refuses_other_settings(extracted, tmp_path, raw_dir):
    out = tmp_path / "out"
    shutil.copytree(extracted, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mat")}
    summary = run_extraction(raw_dir, out, FAST, progress=False, log=_quiet)
    assert {r["status"] for r in summary.results.values()} == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mat")} == before
    reference = FAST.replace(mode="reference")
    with pytest.raises(
        DataFormatError, match=r"1\.mat: already extracted with other settings .*'mode'"
    ):
        run_extraction(raw_dir, out, reference, progress=False, log=_quiet)
    # the reference mode, forced with overwrite, changes every modality's features
    run_extraction(
        raw_dir, out, reference, subjects=[1], overwrite=True, progress=False, log=_quiet
    )
    old = scipy.io.loadmat(extracted / "1.mat")["feas"]
    new = scipy.io.loadmat(out / "1.mat")["feas"]
    for first, end in ((0, 90), (90 + 21, 90 + 27), (145, 145 + 256)):
        assert not np.allclose(old[:, first:end], new[:, first:end])
    # columns no quirk touches are equal: the GSR statistics of the signal and its differences
    np.testing.assert_allclose(old[:, 90:111], new[:, 90:111])


def test_bad_participant_is_skipped_or_stops_the_run(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir / "1", raw / "1")
    shutil.copytree(raw_dir / "1", raw / "3")
    lines = (raw / "3" / "raw_ppg.csv").read_text().splitlines()
    # drop the row of the last end marker: that clip's start marker is left unterminated
    last_end = max(i for i, line in enumerate(lines) if not line.endswith(",0"))
    (raw / "3" / "raw_ppg.csv").write_text(
        "\n".join(lines[:last_end] + lines[last_end + 1 :]) + "\n"
    )
    out = tmp_path / "out"
    with pytest.raises(
        DataFormatError,
        match=r"3/raw_ppg\.csv column 2 \(trigger\): clip \d+ start marker .* no end",
    ):
        run_extraction(raw, out, FAST, subjects=[3], progress=False, log=_quiet)
    assert not (out / "3.mat").exists()
    summary = run_extraction(raw, out, FAST, on_error="skip", progress=False, log=_quiet)
    assert summary.failed == [3]
    assert summary.results[1]["status"] == "done"
    report = json.loads((out / "extract-report.json").read_text())
    assert report["3"]["status"] == "failed" and "no end" in report["3"]["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        "1.mat",
        "1.provenance.json",
        "extract-report.json",
    ]


def test_command_line(raw_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["dmer", str(raw_dir), str(out), "--no-ica", "--no-progress", "--subjects", "2"]) == 0
    )
    assert (out / "2.mat").is_file() and not (out / "1.mat").exists()
    assert main(["dmer", str(raw_dir), str(out), "--bands", "1-4,4-8", "--no-progress"]) == 1
    assert "bands must be five" in capsys.readouterr().err
    assert main(["dmer", str(tmp_path / "nowhere"), str(out)]) == 1
    assert "raw DMER folder not found" in capsys.readouterr().err


@pytest.mark.slow  # two spawned processes import the stack afresh: ~35 s on 2 busy cores
def test_parallel_workers_give_the_same_files(raw_dir, extracted, tmp_path):
    out = tmp_path / "out"
    summary = run_extraction(raw_dir, out, FAST, workers=2, progress=False, log=_quiet)
    assert {r["status"] for r in summary.results.values()} == {"done"}
    for subject in SUBJECTS:
        np.testing.assert_array_equal(
            scipy.io.loadmat(out / f"{subject}.mat")["feas"],
            scipy.io.loadmat(extracted / f"{subject}.mat")["feas"],
        )


def test_output_trains_with_the_dmer_config(extracted, in_tmp_cwd):
    from mpcl.cli import build_cli

    repo = Path(__file__).resolve().parents[2]
    cli = build_cli(
        [
            "fit",
            "--config",
            str(repo / "experiments" / "dmer" / "mpcl.yaml"),
            f"--data.init_args.root={extracted}",
            f"--data.init_args.subjects={list(SUBJECTS)}",
            "--data.init_args.num_folds=2",
            "--data.init_args.batch_size=32",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step > 0
    assert np.isfinite(float(cli.trainer.callback_metrics["train/loss_epoch"]))


def test_interrupted_write_leaves_nothing_that_looks_finished(raw_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def crash(handle, *args, **kwargs):
        handle.write(b"MATLAB 5.0 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("datamodules.dmer_raw.pipeline.scipy.io.savemat", crash)
    with pytest.raises(KeyboardInterrupt):
        run_extraction(raw_dir, out, FAST, subjects=[1], progress=False, log=_quiet)
    assert not (out / "1.mat").exists()
    assert not list(out.glob(".*tmp"))
    monkeypatch.undo()
    # the provenance file alone does not count as finished: the rerun extracts participant 1
    summary = run_extraction(raw_dir, out, FAST, subjects=[1], progress=False, log=_quiet)
    assert summary.results[1]["status"] == "done"
    assert scipy.io.loadmat(out / "1.mat")["feas"].shape == (32 * ROWS_PER_CLIP, 913)
