"""Batches from a table of in-memory tensors, by indexing: no per-sample Python calls.

A data set here is a dict of equally long tensors (one row per window). A batch is the same dict
indexed with a tensor of row ids, which is one gather per key: for feature tables that fit in
memory this is far faster than a ``DataLoader`` that calls ``__getitem__`` per sample and collates.

Distributed runs are sharded here, not by Lightning's sampler injection (Lightning leaves
iterables that are not ``DataLoader`` alone):

* training: every epoch one seeded permutation, cut to a multiple of ``world_size`` so that each
  rank runs the same number of steps (a rank that stops early would deadlock the gradient
  all-reduce), then strided across ranks;
* evaluation: rows ``rank::world_size`` with no padding, so every row is scored exactly once over
  all ranks (Lightning's ``DistributedSampler`` would repeat rows to even out the ranks).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor


class InMemoryBatches:
    """An iterable over dict batches of a tensor table.

    Args:
        table: Equally long tensors keyed by name (modalities, ``target``, ``subject``, ...).
        batch_size: Rows per batch.
        shuffle: Draw a new permutation every epoch (training); else keep row order.
        drop_last: Drop the last incomplete batch.
        seed: Seed of the permutation; epoch ``e`` uses ``seed + e``, so runs are reproducible and
            every rank of a distributed run draws the same permutation.
        rank: This process's rank.
        world_size: Number of processes sharing the table.
        pad_to_equal: Cut the permutation so that all ranks get equally many rows (training).
            Evaluation leaves it off so that no row is dropped or repeated.
    """

    def __init__(
        self,
        table: Mapping[str, Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad_to_equal: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        lengths = {key: len(value) for key, value in table.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"table columns have different lengths: {lengths}")
        self.table = dict(table)
        self.num_rows = next(iter(lengths.values()), 0)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad_to_equal = shuffle if pad_to_equal is None else pad_to_equal
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch``."""
        self.epoch = epoch

    @property
    def sampler(self) -> InMemoryBatches:
        """This object, so that Lightning's ``dataloader.sampler.set_epoch(epoch)`` reaches it.

        Lightning sets the epoch from its loop counters at every epoch start, so a run resumed
        from a mid-training checkpoint draws the same permutations as an uninterrupted one.
        """
        return self

    def _rows_per_rank(self) -> int:
        if self.pad_to_equal:
            return self.num_rows // self.world_size
        # Unpadded striding: rank r holds ceil((n - r) / world_size) rows.
        return max(0, math.ceil((self.num_rows - self.rank) / self.world_size))

    def __len__(self) -> int:
        rows = self._rows_per_rank()
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def indices(self) -> Tensor:
        """The row ids this rank visits in the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_rows, generator=generator)
        else:
            order = torch.arange(self.num_rows)
        if self.pad_to_equal:
            order = order[: (self.num_rows // self.world_size) * self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.indices()
        device = next(iter(self.table.values())).device if self.table else torch.device("cpu")
        order = order.to(device)
        for step in range(len(self)):
            rows = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield {key: value.index_select(0, rows) for key, value in self.table.items()}
        # Without Lightning (plain loops), advance the permutation by itself.
        self.epoch += 1
