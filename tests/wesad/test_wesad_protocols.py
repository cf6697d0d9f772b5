"""Every evaluation protocol on WESAD tables, with loso over all 15 subjects of the release."""

import numpy as np
import pytest

from datamodules.protocols import split_table
from datamodules.wesad import WESADDataModule
from datamodules.wesad.fixtures import generate_fake_wesad
from datamodules.wesad.layout import SUBJECTS


@pytest.fixture(scope="module")
def all_subjects(tmp_path_factory):
    """A fake release of all 15 subjects with short rounds (a few windows each)."""
    root = tmp_path_factory.mktemp("wesad15")
    generate_fake_wesad(root, SUBJECTS, seconds_per_condition=10.0, seed=2)
    return root


def _module(root, protocol, fold=0):
    return WESADDataModule(
        root=str(root), protocol=protocol, fold=fold, cache_dir=str(root / "cache")
    )


def test_loso_has_fifteen_folds_each_subject_held_out_once(all_subjects):
    dm = _module(all_subjects, "loso", fold=14)
    assert dm.fold_count == 15  # from the configured subjects, no data read
    dm.setup()
    ids = [int(s[1:]) for s in SUBJECTS]
    assert dm.table.subjects == ids
    assert dm.table.subject[dm.splits["test"]].unique().tolist() == [17]
    held_out = []
    for fold in range(15):
        split = split_table(dm.table, "loso", fold, val_fraction=0.1)
        test = set(dm.table.subject[split.test].tolist())
        train = set(dm.table.subject[split.train].tolist())
        val = set(dm.table.subject[split.val].tolist())
        assert len(test) == 1 and not test & (train | val) and not train & val
        assert train | val | test == set(ids)
        held_out += test
    assert held_out == ids


@pytest.mark.parametrize("protocol", ["random-window", "temporal", "clip-holdout", "kfold"])
def test_other_protocols(all_subjects, protocol):
    dm = _module(all_subjects, protocol, fold=3)
    assert dm.fold_count == (5 if protocol == "kfold" else 15)
    dm.setup()
    table, splits = dm.table, dm.splits
    parts = [set(splits[name].tolist()) for name in ("train", "val", "test")]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    test_subjects = set(table.subject[splits["test"]].tolist())
    if protocol == "kfold":
        assert len(test_subjects) == 3  # 15 subjects in 5 folds
        assert not test_subjects & set(table.subject[splits["train"]].tolist())
        return
    # subject-dependent: fold 3 is the fourth subject (S5), every row of it
    assert test_subjects == {5} == set(table.subject[splits["train"]].tolist())
    if protocol == "clip-holdout":
        test_trials = set(table.trial[splits["test"]].tolist())
        assert not test_trials & set(table.trial[splits["train"]].tolist())
    if protocol == "temporal":
        # within each round, test windows come after every training window
        for trial in table.trial[splits["test"]].unique().tolist():
            rows = table.trial == trial
            train = table.position[np.intersect1d(splits["train"], np.flatnonzero(rows))]
            test = table.position[np.intersect1d(splits["test"], np.flatnonzero(rows))]
            if len(train) and len(test):
                assert train.max() < test.min()
