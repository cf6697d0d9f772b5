"""Protocol splits: disjoint parts, validation from the training part, whole clips/subjects."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from datamodule_fakes import make_table

from datamodules.protocols import (
    PROTOCOLS,
    SUBJECT_DEPENDENT,
    describe_split,
    num_folds,
    split_table,
    write_split_file,
)

TABLE = make_table()
SUBJECTS = TABLE.subjects


def _cases():
    for protocol in PROTOCOLS:
        folds = num_folds(protocol, TABLE, k=3)
        for fold in sorted({0, folds - 1}):
            yield protocol, fold


def _pairs(table, rows):
    return {(int(s), int(t)) for s, t in zip(table.subject[rows], table.trial[rows], strict=True)}


@pytest.mark.parametrize(("protocol", "fold"), list(_cases()))
@pytest.mark.parametrize("val_fraction", [0.0, 0.1, 0.3])
def test_parts_are_disjoint_and_val_comes_from_the_train_part(protocol, fold, val_fraction):
    split = split_table(TABLE, protocol, fold, k=3, val_fraction=val_fraction)
    train, val, test = (set(p.tolist()) for p in (split.train, split.val, split.test))
    assert train and test
    assert not (train & test) and not (val & test) and not (train & val)
    for part in (split.train, split.val, split.test):
        assert part.dtype == torch.int64
        assert torch.equal(part, torch.sort(part).values)
    # The same fold without validation: val is exactly what was taken from its training part.
    no_val = split_table(TABLE, protocol, fold, k=3, val_fraction=0.0)
    assert torch.equal(no_val.test, split.test)
    assert set(no_val.train.tolist()) == train | val
    assert (len(val) > 0) == (val_fraction > 0)


@pytest.mark.parametrize("protocol", sorted(SUBJECT_DEPENDENT))
def test_subject_dependent_folds_split_one_subject(protocol):
    for fold, subject in enumerate(SUBJECTS):
        split = split_table(TABLE, protocol, fold)
        rows = torch.cat([split.train, split.val, split.test])
        assert set(TABLE.subject[rows].tolist()) == {subject}
        assert len(rows) == int((TABLE.subject == subject).sum())


def test_random_window_matches_scikit_learn_train_test_split():
    model_selection = pytest.importorskip("sklearn.model_selection")
    for fold, subject in enumerate(SUBJECTS):
        rows = torch.nonzero(TABLE.subject == subject).squeeze(1).numpy()
        _, expected_test = model_selection.train_test_split(rows, test_size=0.2, random_state=3407)
        split = split_table(TABLE, "random-window", fold, seed=3407)
        assert split.test.tolist() == sorted(expected_test.tolist())
        assert len(split.test) == math.ceil(0.2 * len(rows))


def test_random_window_depends_on_seed():
    a = split_table(TABLE, "random-window", 0, seed=3407)
    b = split_table(TABLE, "random-window", 0, seed=1)
    assert not torch.equal(a.test, b.test)


def test_temporal_tests_the_last_rows_of_every_clip_and_validates_just_before():
    split = split_table(TABLE, "temporal", 2, val_fraction=0.2)
    for rows_a, rows_b in ((split.train, split.val), (split.val, split.test)):
        for clip in torch.unique(TABLE.trial[split.test]).tolist():
            a = TABLE.position[rows_a][TABLE.trial[rows_a] == clip]
            b = TABLE.position[rows_b][TABLE.trial[rows_b] == clip]
            assert len(b) > 0 and (len(a) == 0 or a.max() < b.min())
    subject = SUBJECTS[2]
    for clip in range(15):
        in_clip = (TABLE.subject == subject) & (TABLE.trial == clip)
        n = int(in_clip.sum())
        assert int(in_clip[split.test].sum()) == math.ceil(0.2 * n - 1e-9)
        assert int(in_clip[split.train].sum()) >= 1


def test_clip_holdout_holds_out_whole_clips_stratified_by_category():
    for fold in range(len(SUBJECTS)):
        split = split_table(TABLE, "clip-holdout", fold, val_fraction=0.2)
        test_clips = _pairs(TABLE, split.test)
        val_clips = _pairs(TABLE, split.val)
        assert not test_clips & _pairs(TABLE, split.train)
        assert not test_clips & val_clips
        assert not val_clips & _pairs(TABLE, split.train)
        # 15 clips: 3 test clips (ceil 0.2 * 15) allocated 4/4/7 -> largest remainder 1/1/1.
        categories = [int(TABLE.category[(TABLE.trial == t)][0]) for _, t in test_clips]
        assert sorted(categories) == [0, 1, 2]


def test_clip_holdout_stratification_on_dmer_sized_subjects():
    table = make_table(subjects=(1, 2), categories=(0,) * 8 + (1,) * 8 + (2,) * 16, rows=(2, 3))
    for fold in range(2):
        split = split_table(table, "clip-holdout", fold, val_fraction=0.1)
        test = torch.tensor(sorted(t for _, t in _pairs(table, split.test)))
        per_category = torch.bincount(torch.clamp(test // 8, max=2), minlength=3).tolist()
        assert per_category == [2, 2, 3]  # ceil(0.2 * 32) = 7 clips by largest remainder
        val = sorted(t for _, t in _pairs(table, split.val))
        assert len(val) == 3  # ceil(0.1 * 25)


def test_loso_holds_out_the_ith_subject_and_validates_on_whole_subjects():
    for fold, subject in enumerate(SUBJECTS):
        split = split_table(TABLE, "loso", fold, val_fraction=0.1)
        assert set(TABLE.subject[split.test].tolist()) == {subject}
        train_subjects = set(TABLE.subject[split.train].tolist())
        val_subjects = set(TABLE.subject[split.val].tolist())
        assert len(val_subjects) == 1  # at least one, ceil(0.1 * 5)
        assert subject not in train_subjects | val_subjects
        assert not train_subjects & val_subjects
        assert train_subjects | val_subjects | {subject} == set(SUBJECTS)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_kfold_partitions_the_subjects(k):
    held_out = []
    for fold in range(k):
        split = split_table(TABLE, "kfold", fold, k=k, val_fraction=0.25)
        test_subjects = set(TABLE.subject[split.test].tolist())
        others = set(TABLE.subject[torch.cat([split.train, split.val])].tolist())
        assert not test_subjects & others
        assert not set(TABLE.subject[split.train].tolist()) & set(TABLE.subject[split.val].tolist())
        # test rows are all rows of the test subjects
        assert len(split.test) == int(
            torch.isin(TABLE.subject, torch.tensor(sorted(test_subjects))).sum()
        )
        held_out.append(test_subjects)
    assert set().union(*held_out) == set(SUBJECTS)
    assert sum(len(h) for h in held_out) == len(SUBJECTS)
    assert max(map(len, held_out)) - min(map(len, held_out)) <= 1


def test_kfold_shuffle_depends_on_seed():
    tests = {
        seed: tuple(
            sorted(set(TABLE.subject[split_table(TABLE, "kfold", 0, k=3, seed=seed).test].tolist()))
        )
        for seed in range(8)
    }
    assert len(set(tests.values())) > 1
    again = split_table(TABLE, "kfold", 0, k=3, seed=5)
    assert tuple(sorted(set(TABLE.subject[again.test].tolist()))) == tests[5]


def test_num_folds_and_bad_arguments():
    assert num_folds("kfold", TABLE, k=4) == 4
    assert num_folds("loso", TABLE) == len(SUBJECTS)
    assert num_folds("temporal", [3, 1, 3]) == 2
    with pytest.raises(ValueError, match="unknown protocol"):
        num_folds("leave-one-clip-out", TABLE)
    with pytest.raises(ValueError, match="num_folds"):
        num_folds("kfold", TABLE, k=len(SUBJECTS) + 1)
    with pytest.raises(ValueError, match="out of range"):
        split_table(TABLE, "loso", len(SUBJECTS))
    with pytest.raises(ValueError, match="val_fraction"):
        split_table(TABLE, "kfold", 0, val_fraction=1.0)


def test_split_description_round_trips_through_json(tmp_path):
    split = split_table(TABLE, "clip-holdout", 1, val_fraction=0.1)
    description = describe_split(
        TABLE, split, protocol="clip-holdout", fold=1, seed=3407, num_folds=6
    )
    path = write_split_file(tmp_path / "runs" / "split.json", description)
    loaded = json.loads(path.read_text())
    assert loaded["protocol"] == "clip-holdout" and loaded["fold"] == 1 and loaded["seed"] == 3407
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temporary file left
    for name, rows in split.as_dict().items():
        part = loaded["splits"][name]
        assert part["rows"] == rows.tolist()
        assert part["subjects"] == [SUBJECTS[1]]
        trials = np.unique(TABLE.trial[rows].numpy()).tolist()
        assert part["trials"] == {str(SUBJECTS[1]): trials}
