"""The built-in synthetic data set: exact DMER format, determinism, caching, learnable structure."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.io
import torch

from datamodules import synthetic
from datamodules.dmer import DMER_VALID_SUBJECTS, DMERDataModule, clip_category
from datamodules.synthetic import (
    GENERATOR_VERSION,
    SyntheticDMERDataModule,
    generate_synthetic_dmer,
    synthesize_subject,
)


def _load(path):
    return scipy.io.loadmat(path)


def test_files_are_in_the_dmer_feature_format(tiny_dmer_dir):
    files = sorted(tiny_dmer_dir.glob("*.mat"), key=lambda p: int(p.stem))
    assert [int(p.stem) for p in files] == list(DMER_VALID_SUBJECTS[:5])
    for path in files:
        data = _load(path)
        assert data["feas"].shape == (32 * 6, 913)
        assert np.isfinite(data["feas"]).all()
        assert data["vids"].shape == (32 * 6, 1)
        assert np.bincount(data["vids"][:, 0].astype(int)).tolist() == [6] * 32
        labels = data["dis_label"]
        assert labels.shape == (32, 10)
        assert set(np.unique(labels)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        face = data["feas"][:, 145:].reshape(-1, 3, 256)
        assert (face >= 0).all()
        assert face.sum(-1) == pytest.approx(np.ones((32 * 6, 3)), abs=1e-5)


def test_round_trip_through_the_dmer_loader(tiny_dmer_dir):
    datamodule = DMERDataModule(str(tiny_dmer_dir), subjects=list(DMER_VALID_SUBJECTS[:5]))
    datamodule.setup()
    table = datamodule.table
    assert len(table) == 5 * 32 * 6
    assert table.features["eeg"].shape == (len(table), 18, 5)
    assert {k: v.dtype for k, v in table.features.items()} == dict.fromkeys(
        table.features, torch.float32
    )
    assert torch.allclose(table.target.sum(1), torch.ones(len(table)))
    assert (table.target > 0).all()
    assert torch.equal(table.category, torch.from_numpy(clip_category(table.trial.numpy())))
    # every row of a clip has its clip's distribution; positions run 0..5 within each clip
    key = table.subject * 100 + table.trial
    for k in torch.unique(key)[:20]:
        rows = key == k
        assert torch.allclose(
            table.target[rows], table.target[rows][0].expand_as(table.target[rows])
        )
        assert sorted(table.position[rows].tolist()) == list(range(6))


def test_generation_is_deterministic_and_subjects_are_independent(tmp_path):
    a = generate_synthetic_dmer(tmp_path / "a", num_subjects=3, rows_per_clip=4, seed=7)
    b = generate_synthetic_dmer(tmp_path / "b", num_subjects=2, rows_per_clip=4, seed=7)
    c = generate_synthetic_dmer(tmp_path / "c", num_subjects=1, rows_per_clip=4, seed=8)
    for x, y in zip(a, b, strict=False):
        for key in ("feas", "vids", "dis_label"):
            assert np.array_equal(_load(x)[key], _load(y)[key])
    assert not np.array_equal(_load(a[0])["feas"], _load(c[0])["feas"])
    assert not np.array_equal(_load(a[0])["feas"], _load(a[1])["feas"])
    with pytest.raises(ValueError, match="num_subjects"):
        generate_synthetic_dmer(tmp_path / "d", num_subjects=74)


def test_ratings_follow_clip_categories_and_mixed_clips_are_mixed():
    shared = synthetic._shared_parameters(0)
    labels = np.stack(
        [synthesize_subject(s, 2, 0, shared)["dis_label"] for s in DMER_VALID_SUBJECTS[:16]]
    )
    category = clip_category(np.arange(32))
    positive, negative = labels[..., :5].mean(-1), labels[..., 5:].mean(-1)  # [subjects, clips]
    assert positive[:, category == 0].mean() > negative[:, category == 0].mean() + 1.5
    assert negative[:, category == 1].mean() > positive[:, category == 1].mean() + 1.5
    mixed = category == 2
    assert positive[:, mixed].mean() > 2.3 and negative[:, mixed].mean() > 2.3
    # co-occurrence: items correlate within a valence group and oppose across groups
    corr = np.corrcoef(labels.reshape(-1, 10).T)
    within = np.concatenate(
        [corr[:5, :5][np.triu_indices(5, 1)], corr[5:, 5:][np.triu_indices(5, 1)]]
    )
    assert within.mean() > 0.4
    assert corr[:5, 5:].mean() < -0.1


def test_datamodule_generates_once_into_a_parameter_keyed_cache(in_tmp_cwd):
    datamodule = SyntheticDMERDataModule(num_subjects=2, rows_per_clip=3, data_seed=4, num_folds=2)
    expected = in_tmp_cwd / "data" / "synthetic" / f"s2-r3-seed4-v{GENERATOR_VERSION}"
    assert datamodule.data_dir == expected
    assert datamodule.metadata.name == "synthetic"
    datamodule.prepare_data()
    manifest = json.loads((expected / "synthetic.json").read_text())
    assert manifest["num_subjects"] == 2 and manifest["seed"] == 4
    assert sorted(p.name for p in expected.parent.iterdir()) == [expected.name]  # no temp dirs
    stamp = (expected / "1.mat").stat().st_mtime_ns
    again = SyntheticDMERDataModule(num_subjects=2, rows_per_clip=3, data_seed=4, num_folds=2)
    again.setup()  # setup alone generates when needed; here the cache is reused
    assert (expected / "1.mat").stat().st_mtime_ns == stamp
    assert len(again.table) == 2 * 32 * 3


def test_data_dir_honours_mpcl_data_dir_and_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MPCL_DATA_DIR", str(tmp_path / "cache"))
    assert SyntheticDMERDataModule().data_dir.parent == tmp_path / "cache" / "synthetic"
    explicit = SyntheticDMERDataModule(root=str(tmp_path / "mine"))
    assert explicit.data_dir.parent == tmp_path / "mine"


def test_a_crash_leaves_no_half_data_set(tmp_path, monkeypatch):
    def crash(root, *args, **kwargs):
        (root / "1.mat").write_bytes(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(synthetic, "generate_synthetic_dmer", crash)
    datamodule = SyntheticDMERDataModule(num_subjects=2, rows_per_clip=2, root=str(tmp_path))
    with pytest.raises(RuntimeError, match="killed"):
        datamodule.prepare_data()
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_generator_that_finishes_first_wins(tmp_path, monkeypatch):
    first = SyntheticDMERDataModule(num_subjects=1, rows_per_clip=2, root=str(tmp_path))
    first.prepare_data()
    stamp = (first.data_dir / "1.mat").stat().st_mtime_ns
    second = SyntheticDMERDataModule(num_subjects=1, rows_per_clip=2, root=str(tmp_path))
    # The second process checked before the first one finished, so it generates too ...
    monkeypatch.setattr(
        SyntheticDMERDataModule, "_is_complete", lambda self: os.environ.get("X") == "1"
    )
    monkeypatch.setenv("X", "0")
    real_rename = os.rename

    def rename(src, dst):
        os.environ["X"] = "1"
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    second.prepare_data()  # ... and its rename onto the finished folder fails harmlessly
    assert (first.data_dir / "1.mat").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.data_dir.name]


def test_a_foreign_folder_in_the_way_is_an_error(tmp_path):
    datamodule = SyntheticDMERDataModule(num_subjects=1, rows_per_clip=2, root=str(tmp_path))
    datamodule.data_dir.mkdir(parents=True)
    (datamodule.data_dir / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="no complete synthetic data set"):
        datamodule.prepare_data()
    assert (datamodule.data_dir / "notes.txt").read_text() == "mine"


# --- learnability: a closed-form ridge regression from features to targets -----------------


def _kl(target, pred):
    pred = np.clip(pred, 1e-3, None)
    pred = pred / pred.sum(1, keepdims=True)
    return float((target * np.log(target / pred)).sum(1).mean())


def _ridge_vs_mean(datamodule):
    """Test KL of ridge regression (ridge strength chosen on validation) and of the train mean."""
    datamodule.setup()
    table = datamodule.table
    x = torch.cat([v.flatten(1) for v in table.features.values()], 1).double().numpy()
    y = table.target.double().numpy()
    train, val, test = (datamodule.splits[k].numpy() for k in ("train", "val", "test"))
    x_mean, y_mean = x[train].mean(0), y[train].mean(0)
    xc = x[train] - x_mean
    gram, moment = xc.T @ xc, xc.T @ (y[train] - y_mean)

    def predict(rows, strength):
        weights = np.linalg.solve(gram + strength * np.eye(len(gram)), moment)
        return y_mean + (x[rows] - x_mean) @ weights

    strength = min((10.0**e for e in range(1, 6)), key=lambda s: _kl(y[val], predict(val, s)))
    return _kl(y[test], predict(test, strength)), _kl(y[test], np.tile(y_mean, (len(test), 1)))


@pytest.fixture(scope="module")
def learnability_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    SyntheticDMERDataModule(num_subjects=8, rows_per_clip=12, root=str(root)).prepare_data()
    return root


def test_subject_independent_ridge_beats_the_training_mean(learnability_dir):
    ratios = []
    for fold in range(4):
        datamodule = SyntheticDMERDataModule(
            num_subjects=8, rows_per_clip=12, root=str(learnability_dir), protocol="kfold",
            num_folds=4, fold=fold, val_fraction=0.15,
        )  # fmt: skip
        ridge, mean = _ridge_vs_mean(datamodule)
        assert ridge < mean
        ratios.append(ridge / mean)
    assert np.mean(ratios) < 0.8


def test_subject_independent_is_harder_than_subject_dependent(learnability_dir):
    def mean_ratio(protocol, folds, **kwargs):
        ratios = []
        for fold in range(folds):
            datamodule = SyntheticDMERDataModule(
                num_subjects=8, rows_per_clip=12, root=str(learnability_dir), protocol=protocol,
                fold=fold, val_fraction=0.15, **kwargs,
            )  # fmt: skip
            ridge, mean = _ridge_vs_mean(datamodule)
            ratios.append(ridge / mean)
        return np.mean(ratios)

    dependent = mean_ratio("random-window", 8)
    independent = mean_ratio("kfold", 4, num_folds=4)
    assert dependent < independent - 0.05
