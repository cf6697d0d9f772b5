"""The datamodule's masking options: drops, drop rate, noise, training dropout, all-NaN blocks."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
import scipy.io
import torch

from datamodules import DMERDataModule
from datamodules.dmer import DMER_COLUMNS
from datamodules.io import DataFormatError
from datamodules.modality_mask import ModalityMasking, present_key

MODALITIES = ("eeg", "gsr", "ppg", "face")
SUBJECTS = [1, 2, 5, 6, 7]


def _dm(root, masking=None, **kwargs) -> DMERDataModule:
    kwargs.setdefault("subjects", SUBJECTS)
    dm = DMERDataModule(root=str(root), masking=masking, **kwargs)
    dm.setup()
    return dm


def test_no_masking_leaves_the_batches_unchanged(tiny_dmer_dir) -> None:
    plain = _dm(tiny_dmer_dir)
    masked = _dm(tiny_dmer_dir, ModalityMasking())
    for split in ("train", "val", "test"):
        a, b = plain.split_rows(split), masked.split_rows(split)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_named_drop_at_test_only(tiny_dmer_dir) -> None:
    dm = _dm(tiny_dmer_dir, ModalityMasking(drop=["face"], drop_at="test"))
    test = dm.split_rows("test")
    assert not test[present_key("face")].any()
    assert torch.count_nonzero(test["face"]) == 0
    assert present_key("eeg") not in test
    assert present_key("face") not in dm.split_rows("train")
    assert present_key("face") not in dm.split_rows("val")


def test_named_drop_at_train_reaches_train_and_val(tiny_dmer_dir) -> None:
    dm = _dm(tiny_dmer_dir, ModalityMasking(drop=["gsr"], drop_at="train"))
    assert not dm.split_rows("train")[present_key("gsr")].any()
    assert not dm.split_rows("val")[present_key("gsr")].any()
    assert present_key("gsr") not in dm.split_rows("test")


def test_drop_rate_is_seeded_and_drops_one_modality_per_hit_window(tiny_dmer_dir) -> None:
    masking = ModalityMasking(drop_rate=0.3, seed=4)
    test = _dm(tiny_dmer_dir, masking).split_rows("test")
    again = _dm(tiny_dmer_dir, ModalityMasking(drop_rate=0.3, seed=4)).split_rows("test")
    other = _dm(tiny_dmer_dir, ModalityMasking(drop_rate=0.3, seed=5)).split_rows("test")
    missing = torch.stack([~test[present_key(m)] for m in MODALITIES], dim=1)
    assert missing.sum(dim=1).max() == 1
    assert 0.2 < missing.any(dim=1).float().mean() < 0.4
    assert all(torch.equal(test[present_key(m)], again[present_key(m)]) for m in MODALITIES)
    assert any(not torch.equal(test[present_key(m)], other[present_key(m)]) for m in MODALITIES)


def test_noise_has_the_requested_snr(tiny_dmer_dir) -> None:
    clean = _dm(tiny_dmer_dir).split_rows("test")
    noisy = _dm(tiny_dmer_dir, ModalityMasking(noise_snr_db={"face": 0.0})).split_rows("test")
    noise = noisy["face"].double() - clean["face"].double()
    snr = 10 * torch.log10(clean["face"].double().pow(2).mean() / noise.pow(2).mean())
    assert abs(float(snr)) < 0.1
    assert torch.equal(noisy["eeg"], clean["eeg"])


def test_unknown_modality_is_refused(tiny_dmer_dir) -> None:
    with pytest.raises(ValueError, match=r"masking.drop names modalities \['voice'\]"):
        _dm(tiny_dmer_dir, ModalityMasking(drop=["voice"]))
    with pytest.raises(ValueError, match="drop_at must be one of"):
        ModalityMasking(drop_at="sometimes")


def test_training_modality_dropout_is_fresh_per_epoch_and_reproducible(tiny_dmer_dir) -> None:
    dm = _dm(tiny_dmer_dir, ModalityMasking(train_dropout=0.5, seed=1))
    loader = dm.train_dataloader()
    first = next(iter(loader))
    loader.set_epoch(0)
    repeat = next(iter(loader))
    loader.set_epoch(1)
    later = next(iter(loader))
    key = present_key("face")
    assert torch.equal(first[key], repeat[key])
    assert not torch.equal(first["index"], later["index"]) or not torch.equal(
        first[key], later[key]
    )
    missing = torch.stack([~first[present_key(m)] for m in MODALITIES], dim=1)
    assert missing.any() and missing.sum(dim=1).max() == 1
    assert present_key("face") not in next(iter(dm.test_dataloader()))


def _copy_with_nan(src, dst, subject: int, rows: slice, first: int, end: int) -> None:
    shutil.copytree(src, dst)
    path = dst / f"{subject}.mat"
    data = scipy.io.loadmat(path)
    feas = data["feas"].astype(np.float64)
    feas[rows, first:end] = np.nan
    scipy.io.savemat(path, {"feas": feas, "vids": data["vids"], "dis_label": data["dis_label"]})


def test_all_nan_block_is_an_error_unless_nan_as_missing(tiny_dmer_dir, tmp_path) -> None:
    first, end, _ = DMER_COLUMNS["gsr"]
    root = tmp_path / "nan"
    _copy_with_nan(tiny_dmer_dir, root, 1, slice(None), first, end)
    with pytest.raises(DataFormatError, match=r"1\.mat: field 'feas' holds .* NaN"):
        _dm(root)
    dm = _dm(root, ModalityMasking(nan_as_missing=True), protocol="random-window", fold=0)
    assert not dm.split_rows("train")[present_key("gsr")].any()
    dm = _dm(root, ModalityMasking(nan_as_missing=True))
    table = dm.table
    missing = ~table.present["gsr"]
    assert torch.equal(missing, table.subject == 1)
    assert torch.count_nonzero(table.features["gsr"][missing]) == 0
    assert "eeg" not in table.present
    rows = torch.cat([dm.split_rows(s)["index"] for s in ("train", "val", "test")])
    present = torch.cat([dm.split_rows(s)[present_key("gsr")] for s in ("train", "val", "test")])
    assert torch.equal(present, table.subject[rows] != 1)
    # Standardisation statistics come from the present rows only.
    train = dm.split_rows("train")
    kept = train[present_key("gsr")]
    assert train["gsr"][kept].mean(dim=0).abs().max() < 1e-4


def test_partly_nan_block_stays_an_error(tiny_dmer_dir, tmp_path) -> None:
    first, _, _ = DMER_COLUMNS["gsr"]
    root = tmp_path / "partial"
    _copy_with_nan(tiny_dmer_dir, root, 2, slice(0, 3), first, first + 2)
    with pytest.raises(DataFormatError, match=r"2\.mat: field 'feas' holds 6 NaN"):
        _dm(root, ModalityMasking(nan_as_missing=True))


def test_masking_report_is_written_to_the_run_folder(tiny_dmer_dir, tmp_path) -> None:
    masking = ModalityMasking(drop_rate=0.5, seed=2)
    dm = DMERDataModule(root=str(tiny_dmer_dir), subjects=SUBJECTS, masking=masking)
    dm.trainer = types.SimpleNamespace(log_dir=str(tmp_path), global_rank=0, world_size=1)
    dm.setup()
    report = json.loads((tmp_path / "masking.json").read_text())
    assert report["settings"]["drop_rate"] == 0.5
    test = dm.split_rows("test")
    counts = {m: int((~test[present_key(m)]).sum()) for m in MODALITIES}
    assert report["splits"]["test"]["missing_windows"] == counts
    assert sum(report["splits"]["train"]["missing_windows"].values()) == 0
