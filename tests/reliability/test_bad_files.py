"""Bad input files and folders: refused with the file, the field and what was expected."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import datamodules.wesad.subject as subject_module
from datamodules import DataFormatError, DMERDataModule
from datamodules.dmer import load_dmer_file
from datamodules.io import atomic_write_text, read_mat_variables
from datamodules.synthetic import generate_synthetic_dmer
from datamodules.wesad.fake_signals import make_subject
from datamodules.wesad.fixtures import write_fake_subject
from datamodules.wesad.safe_pickle import WESADFormatError, validate_recording
from datamodules.wesad.subject import load_subject
from mpcl.runner.run import ProtocolRun


@pytest.fixture
def dmer_file(tmp_path) -> tuple[Path, dict]:
    generate_synthetic_dmer(tmp_path / "src", num_subjects=1, rows_per_clip=2, seed=3)
    path = next((tmp_path / "src").glob("*.mat"))
    data = scipy.io.loadmat(path)
    return path, {k: v for k, v in data.items() if not k.startswith("__")}


def test_hdf5_declared_shape_is_checked_before_reading(tmp_path):
    path = tmp_path / "1.mat"
    with h5py.File(path, "w", userblock_size=512) as handle:
        # 50 000 x 913 float64 (365 MB) declared, nothing stored: the file is a few kB.
        handle.create_dataset("feas", shape=(913, 50_000), dtype="f8", chunks=(913, 64))
        handle.create_dataset("vids", data=np.zeros((1, 4)))
    assert path.stat().st_size < 10_000
    started = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"1.mat: field 'feas' declares shape \(50000, 913\)"):
        read_mat_variables(path, ["feas", "vids"])
    assert time.perf_counter() - started < 5
    assert read_mat_variables(path, ["vids"])["vids"].shape == (4, 1)


@pytest.mark.parametrize("names", [("1.mat", "01.mat"), ("\u0661.mat",), ("1\u00b2.mat",)])
def test_predict_subject_ids_are_ascii_and_unique(dmer_file, tmp_path, names):
    path, _ = dmer_file
    root = tmp_path / "predict"
    root.mkdir()
    for name in names:
        (root / name).write_bytes(path.read_bytes())
    datamodule = DMERDataModule(root=str(tmp_path), predict_root=str(root))
    with pytest.raises(DataFormatError, match=r"ASCII digits|also the id of"):
        datamodule.predict_files()


def test_rating_overflow_is_refused(dmer_file):
    path, data = dmer_file
    labels = data["dis_label"].astype(np.float64)
    labels[4] = 1e308
    scipy.io.savemat(path, {**data, "dis_label": labels})
    with pytest.raises(DataFormatError, match=r"'dis_label' rows \(clips\) \[4\] overflow"):
        load_dmer_file(path, 1)


def test_complex_ratings_are_refused(dmer_file):
    path, data = dmer_file
    scipy.io.savemat(path, {**data, "dis_label": data["dis_label"] + 1j})
    with pytest.raises(DataFormatError, match="'dis_label' has dtype complex"):
        load_dmer_file(path, 1)


@pytest.mark.parametrize(
    ("code", "words"),
    [(np.nan, "non-integer codes"), (2.5, "non-integer codes"), (9, "codes outside 0-7")],
)
def test_wesad_label_codes_are_validated(tmp_path, code, words):
    data, _ = make_subject("S2", seconds_per_condition=20.0, seed=0)
    label = np.asarray(data["label"], dtype=np.float64)
    label[1000] = code
    data["label"] = label
    with pytest.raises(WESADFormatError, match=f"'label' holds 1 {words}"):
        validate_recording(data, tmp_path / "S2.pkl")


def test_wesad_cache_entry_from_another_source_is_not_used(tmp_path, monkeypatch):
    root = tmp_path / "wesad"
    write_fake_subject(root, "S2", seconds_per_condition=20.0, seed=1)
    write_fake_subject(root, "S3", seconds_per_condition=25.0, seed=2)
    cache = tmp_path / "cache"
    s2 = load_subject(root, "S2", 5.0, 1.0, cache)
    s3 = load_subject(root, "S3", 5.0, 1.0, cache)
    entry_s2 = next(cache.glob("S2-*.npz"))
    entry_s3 = next(cache.glob("S3-*.npz"))
    os.replace(entry_s3, entry_s2)  # S3's features under S2's name (a copied cache folder)
    again = load_subject(root, "S2", 5.0, 1.0, cache)
    assert len(again) == len(s2) != len(s3)
    for name, values in s2.features.items():
        np.testing.assert_array_equal(again.features[name], values)
    # An entry of the right source whose arrays do not fit together is recomputed too.
    with np.load(entry_s2, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["condition"] = arrays["condition"][:-1]
    np.savez(entry_s2, **arrays)
    calls = []
    original = subject_module.extract_subject
    monkeypatch.setattr(
        subject_module, "extract_subject", lambda *a: calls.append(a) or original(*a)
    )
    assert len(load_subject(root, "S2", 5.0, 1.0, cache)) == len(s2)
    assert calls


def test_result_files_honour_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = atomic_write_text(tmp_path / "s.json", "{}\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_one_seed_set_per_runner_folder(tmp_path):
    config = Path(__file__).resolve().parents[2] / "experiments/synthetic/mlp.yaml"
    info = {
        "config_texts": [config.read_text()],
        "overrides": [],
        "protocol": "kfold",
        "seeds": [1],
    }
    first = ProtocolRun([str(config)], "kfold", tmp_path, seeds=[1])
    first.output_dir.mkdir(parents=True, exist_ok=True)
    first._check_run_info(info)
    with pytest.raises(RuntimeError, match=r"seeds \[1\], not \[2\]"):
        ProtocolRun([str(config)], "kfold", tmp_path, seeds=[2])._check_run_info(
            {**info, "seeds": [2]}
        )
    assert json.loads((tmp_path / "run_info.json").read_text())["seeds"] == [1]


def test_errors_are_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    from mpcl.cli import main

    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "--config",
        str(Path(__file__).resolve().parents[2] / "experiments/dmer/mlp.yaml"),
        f"--data.init_args.root={tmp_path / 'nowhere'}",
        "--trainer.enable_progress_bar=false",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"mpcl: error: DataFormatError: {tmp_path / 'nowhere'}: DMER feature folder not found"
    ]
    assert "--debug" in err
    with pytest.raises(DataFormatError):
        main([*args, "--debug"])
    monkeypatch.setenv("MPCL_DEBUG", "1")
    with pytest.raises(DataFormatError):
        main(args)


def test_wesad_features_are_checked_after_the_cast(tmp_path):
    from datamodules.wesad.fixtures import write_py2_pickle
    from datamodules.wesad.layout import pickle_path

    data, _ = make_subject("S2", seconds_per_condition=20.0, seed=0)
    data["signal"]["chest"]["Temp"] = np.asarray(data["signal"]["chest"]["Temp"]) * 1e39
    pickle_path(tmp_path, "S2").parent.mkdir(parents=True)
    write_py2_pickle(data, pickle_path(tmp_path, "S2"))
    with pytest.raises(ValueError, match=r"modality 'temp_chest' is outside the float32 range"):
        load_subject(tmp_path, "S2", 5.0, 1.0, None)
