"""Per-subject splits equal one-model datamodule folds; batches follow InMemoryBatches' order."""

from __future__ import annotations

import pytest
import torch
from many_subjects_helpers import SUBJECTS

from datamodules import DMERDataModule, InMemoryBatches
from mpcl.multisubject.data import StackedRows, build_subject_splits, chunks, step_groups


def _datamodule(root, protocol, fold=0, **kwargs):
    return DMERDataModule(
        root=str(root), subjects=list(SUBJECTS), protocol=protocol, fold=fold, **kwargs
    )


@pytest.mark.parametrize("protocol", ["random-window", "temporal", "clip-holdout"])
def test_subject_splits_equal_the_folds_of_a_one_model_run(ragged_dmer_dir, protocol):
    splits = build_subject_splits(_datamodule(ragged_dmer_dir, protocol, val_fraction=0.2))
    assert [s.subject for s in splits] == list(SUBJECTS)
    for fold, split in enumerate(splits):
        single = _datamodule(ragged_dmer_dir, protocol, fold=fold, val_fraction=0.2)
        single.setup()
        for name in ("train", "val", "test"):
            expected = single.split_rows(name)
            got = split.tables[name]
            assert set(got) == set(expected)
            for key in expected:  # same rows, same standardised values, same row ids
                assert torch.equal(got[key], expected[key]), (protocol, fold, name, key)
        assert torch.equal(split.train_target_mean, single.train_target_mean())
        assert split.datamodule_state["feature_mean"]["eeg"].dtype == torch.float64


@pytest.mark.parametrize(
    "settings",
    [{"subject_standardize": True}, {"data_size": {"window_fraction": 0.5}}],
    ids=["subject_standardize", "data_size"],
)
def test_every_datamodule_setting_reaches_the_subject_splits(ragged_dmer_dir, tmp_path, settings):
    """Regression: the one-subject datamodule copied 9 of the base parameters by hand and lost
    ``subject_standardize`` (checkpoints then recorded False), ``split_file`` and later ones."""
    if "data_size" in settings:
        from datamodules.data_size import DataSize

        settings = {"data_size": DataSize(**settings["data_size"])}
    split_file = tmp_path / "split.json"
    source = _datamodule(ragged_dmer_dir, "clip-holdout", split_file=str(split_file), **settings)
    splits = build_subject_splits(source, folds=[1])
    single = _datamodule(ragged_dmer_dir, "clip-holdout", fold=1, **settings)
    single.setup()
    for name in ("train", "val", "test"):
        expected = single.split_rows(name)
        for key in expected:
            assert torch.equal(splits[0].tables[name][key], expected[key]), (name, key)
    state = splits[0].datamodule_state
    for key, value in single.state_dict().items():
        if isinstance(value, bool):
            assert state[key] == value, key
    assert (tmp_path / "split-fold-01.json").is_file()


def test_subject_independent_protocol_is_refused(ragged_dmer_dir):
    with pytest.raises(ValueError, match="subject-dependent"):
        build_subject_splits(_datamodule(ragged_dmer_dir, "kfold", num_folds=3))
    with pytest.raises(ValueError, match=r"folds \[7\] out of range"):
        build_subject_splits(_datamodule(ragged_dmer_dir, "random-window"), folds=[7])


def test_epoch_rows_are_each_subjects_one_model_batches(ragged_dmer_dir):
    splits = build_subject_splits(_datamodule(ragged_dmer_dir, "random-window"))
    rows = StackedRows(splits, "train")
    assert rows.counts.tolist() == [s.num_rows("train") for s in splits]
    assert len(set(rows.counts.tolist())) == 3  # ragged: three different epoch lengths
    order = rows.epoch_rows(batch_size=16, seed=5, epoch=2)
    for s, split in enumerate(splits):
        alone = InMemoryBatches(split.tables["train"], 16, shuffle=True, seed=5)
        alone.set_epoch(2)
        batches = list(alone)
        for step, batch in enumerate(batches):
            ids = order[s, step]
            got = rows.gather(ids[ids >= 0][None])
            assert torch.equal(got["index"][0], batch["index"])
            assert torch.equal(got["face"][0], batch["face"])
        assert (order[s, len(batches) :] < 0).all()


def test_step_groups_split_by_batch_size_and_key():
    rows = torch.tensor([[0, 1, 2], [3, 4, -1], [5, 6, 7], [-1, -1, -1], [8, 9, 10]])
    groups = [(m.tolist(), n) for m, n in step_groups(rows)]
    assert sorted(groups) == [([0, 2, 4], 3), ([1], 2)]
    keyed = [(m.tolist(), n) for m, n in step_groups(rows, torch.tensor([0, 0, 1, 0, 0]))]
    assert sorted(keyed) == [([0, 4], 3), ([1], 2), ([2], 3)]
    assert [c.tolist() for c in chunks(torch.tensor([0, 2, 4]), 2)] == [[0, 2], [4]]
    assert [c.tolist() for c in chunks(torch.tensor([0, 2, 4]), None)] == [[0, 2, 4]]


def test_padded_rows_cover_every_row_once(ragged_dmer_dir):
    splits = build_subject_splits(_datamodule(ragged_dmer_dir, "random-window"))
    rows = StackedRows(splits, "test")
    ids, mask = rows.padded_rows()
    for s, split in enumerate(splits):
        got = rows.gather(ids[s : s + 1, mask[s]])["index"][0]
        assert torch.equal(got, split.tables["test"]["index"])
