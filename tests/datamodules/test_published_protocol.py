"""The released HeLo code's protocol as data options: torch split, epoch choice on test, scoring."""

from __future__ import annotations

import pytest
import torch
from datamodule_fakes import ToyDataModule, make_table
from torch.utils.data import random_split

from datamodules.protocols import split_table
from datamodules.scoring import SCORED_KEY, first_per_batch

TABLE = make_table(rows=(20, 30))


def reference_split(num_rows: int, seed: int = 3407) -> tuple[list[int], list[int]]:
    """What the released code does per subject (train.py lines 24-26): positions of the parts."""
    train_size = int(0.8 * num_rows)
    train, test = random_split(
        range(num_rows),
        [train_size, num_rows - train_size],
        generator=torch.Generator().manual_seed(seed),
    )
    return list(train.indices), list(test.indices)


@pytest.mark.parametrize("fold", range(len(TABLE.subjects)))
def test_torch_split_is_random_split_with_its_order(fold):
    rows = torch.nonzero(TABLE.subject == TABLE.subjects[fold]).squeeze(1)
    train_pos, test_pos = reference_split(len(rows))
    split = split_table(TABLE, "random-window", fold, val_fraction=0.0, split_rng="torch")
    # the same rows in the same order (test order decides which rows are first in a batch)
    assert split.test.tolist() == rows[test_pos].tolist()
    assert split.train.tolist() == rows[train_pos].tolist()
    assert len(split.val) == 0
    # the default draw has the same sizes but other rows
    default = split_table(TABLE, "random-window", fold, val_fraction=0.0)
    assert len(default.test) == len(split.test)
    assert set(default.test.tolist()) != set(split.test.tolist())


def test_torch_split_sizes_use_int_not_ceil():
    # the reference's training size is int(0.8 n) (train.py line 24)
    for fold in range(len(TABLE.subjects)):
        n = int((TABLE.subject == TABLE.subjects[fold]).sum())
        split = split_table(TABLE, "random-window", fold, val_fraction=0.0, split_rng="torch")
        assert len(split.train) == int(0.8 * n)


def test_torch_split_validation_comes_from_the_training_part():
    split = split_table(TABLE, "random-window", 1, val_fraction=0.25, split_rng="torch")
    no_val = split_table(TABLE, "random-window", 1, val_fraction=0.0, split_rng="torch")
    assert torch.equal(split.test, no_val.test)
    assert set(split.train.tolist()) | set(split.val.tolist()) == set(no_val.train.tolist())
    assert len(split.val) > 0 and not set(split.val.tolist()) & set(split.train.tolist())


def test_split_rng_is_checked_and_ignored_elsewhere():
    with pytest.raises(ValueError, match="split_rng"):
        split_table(TABLE, "random-window", 0, split_rng="jax")
    a = split_table(TABLE, "clip-holdout", 0, split_rng="torch")
    b = split_table(TABLE, "clip-holdout", 0)
    assert all(
        torch.equal(x, y) for x, y in zip(a.as_dict().values(), b.as_dict().values(), strict=True)
    )


def _published(**kwargs):
    kwargs = {
        "protocol": "random-window",
        "fold": 0,
        "val_fraction": 0.0,
        "split_rng": "torch",
        "validate_on_test": True,
        "scoring": "first-per-batch",
        "standardize": False,
        "batch_size": 8,
        **kwargs,
    }
    return ToyDataModule(TABLE, **kwargs)


def test_datamodule_serves_the_reference_test_batches_and_marks_their_first_rows():
    dm = _published()
    dm.setup()
    rows = torch.nonzero(TABLE.subject == TABLE.subjects[0]).squeeze(1)
    _, test_pos = reference_split(len(rows))
    batches = list(dm.test_dataloader())
    served = torch.cat([b["index"] for b in batches])
    assert served.tolist() == rows[test_pos].tolist()
    for batch in batches:
        assert batch[SCORED_KEY].tolist() == [True] + [False] * (len(batch["index"]) - 1)
    # validation is the test split, scored alike: the epoch is chosen on test
    val = list(dm.val_dataloader())
    assert torch.equal(torch.cat([b["index"] for b in val]), served)
    assert torch.equal(torch.cat([b[SCORED_KEY] for b in val]), first_per_batch(len(served), 8))
    # raw features
    assert torch.equal(batches[0]["x"], TABLE.features["x"][batches[0]["index"]])
    assert SCORED_KEY not in next(iter(dm.train_dataloader()))


def test_defaults_score_every_row_and_keep_validation_apart():
    dm = ToyDataModule(TABLE, protocol="random-window", batch_size=8)
    dm.setup()
    assert SCORED_KEY not in next(iter(dm.test_dataloader()))
    assert not set(dm.splits["val"].tolist()) & set(dm.splits["test"].tolist())


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="val_fraction"):
        _published(val_fraction=0.1)
    with pytest.raises(ValueError, match="scoring"):
        _published(scoring="first")
    with pytest.raises(ValueError, match="batch_size"):
        first_per_batch(4, 0)
