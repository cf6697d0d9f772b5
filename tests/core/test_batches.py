"""InMemoryBatches: batches by indexing, reproducible shuffles, exact distributed sharding."""

from __future__ import annotations

import pytest
import torch

from datamodules.batches import InMemoryBatches


def _table(n: int) -> dict[str, torch.Tensor]:
    return {"x": torch.arange(n, dtype=torch.float32).unsqueeze(1), "index": torch.arange(n)}


def test_batches_cover_rows_in_order_when_not_shuffled():
    loader = InMemoryBatches(_table(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(b["index"]) for b in batches] == [4, 4, 2]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(10))
    assert torch.equal(batches[1]["x"][:, 0].long(), batches[1]["index"])


def test_drop_last():
    loader = InMemoryBatches(_table(10), batch_size=4, drop_last=True)
    assert len(loader) == len(list(loader)) == 2


def test_shuffle_is_a_seeded_permutation_that_changes_per_epoch():
    loader = InMemoryBatches(_table(50), batch_size=8, shuffle=True, seed=7)
    loader.set_epoch(0)
    first = torch.cat([b["index"] for b in loader])
    loader.set_epoch(1)
    second = torch.cat([b["index"] for b in loader])
    loader.set_epoch(0)
    again = torch.cat([b["index"] for b in loader])
    assert sorted(first.tolist()) == list(range(50))
    assert not torch.equal(first, second)
    assert torch.equal(first, again)
    # Lightning reaches set_epoch through dataloader.sampler
    assert loader.sampler is loader


def test_eval_sharding_scores_every_row_exactly_once():
    n, world = 23, 3
    seen = []
    for rank in range(world):
        loader = InMemoryBatches(_table(n), batch_size=4, rank=rank, world_size=world)
        rows = [b["index"] for b in loader]
        assert len(rows) == len(loader)
        seen.append(torch.cat(rows))
    assert sorted(torch.cat(seen).tolist()) == list(range(n))


def test_train_sharding_gives_equal_disjoint_shards():
    n, world = 23, 2
    shards = []
    for rank in range(world):
        loader = InMemoryBatches(
            _table(n), batch_size=5, shuffle=True, seed=3, rank=rank, world_size=world
        )
        loader.set_epoch(4)
        shards.append(torch.cat([b["index"] for b in loader]))
    assert len(shards[0]) == len(shards[1]) == n // world
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        InMemoryBatches(_table(3), batch_size=0)
    with pytest.raises(ValueError, match="different lengths"):
        InMemoryBatches({"a": torch.zeros(3), "b": torch.zeros(4)}, batch_size=2)
    with pytest.raises(ValueError, match="rank"):
        InMemoryBatches(_table(3), batch_size=2, rank=2, world_size=2)
