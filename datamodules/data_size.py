"""Training on less data: fewer training subjects, or fewer windows per clip.

For data-size curves (``mpcl-protocol datasize``). Only the training part of a split shrinks; the
validation and test rows of the fold stay the same, so every size is scored on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class DataSize:
    """How much of the training part to keep (``--data.data_size.*``).

    Attributes:
        train_subjects: Keep the training rows of this many training subjects (a seeded random
            choice among the fold's training subjects); ``None`` keeps all. For the
            subject-independent protocols.
        window_fraction: Keep this fraction of the training windows of every (subject, clip),
            at least one, a seeded random choice; 1.0 keeps all. For the subject-dependent
            protocols.
        seed: Seed of both choices.
    """

    train_subjects: int | None = None
    window_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_subjects is not None and self.train_subjects < 1:
            raise ValueError(
                f"data.data_size.train_subjects must be >= 1, got {self.train_subjects}"
            )
        if not 0.0 < self.window_fraction <= 1.0:
            raise ValueError(
                f"data.data_size.window_fraction must be in (0, 1], got {self.window_fraction}"
            )


def subsample_training_rows(rows: Tensor, subject: Tensor, trial: Tensor, size: DataSize) -> Tensor:
    """The kept training row ids, in their original order.

    Args:
        rows: The training row ids ``[N]``.
        subject: Subject id of every row of the table.
        trial: Trial (clip) id of every row of the table.
        size: What to keep.

    Returns:
        A subset of ``rows``.

    Raises:
        ValueError: ``train_subjects`` exceeds the fold's training subjects.
    """
    generator = torch.Generator().manual_seed(int(size.seed))
    keep = torch.ones(len(rows), dtype=torch.bool)
    row_subject = subject[rows]
    if size.train_subjects is not None:
        subjects = torch.unique(row_subject)
        if size.train_subjects > len(subjects):
            raise ValueError(
                f"data.data_size.train_subjects={size.train_subjects} exceeds the "
                f"{len(subjects)} training subjects of this fold"
            )
        chosen = subjects[torch.randperm(len(subjects), generator=generator)][: size.train_subjects]
        keep &= torch.isin(row_subject, chosen)
    if size.window_fraction < 1.0:
        # Random rank of every row within its (subject, clip), vectorised: sort by group, then
        # by a random key, and read each row's position within its group.
        group = row_subject * 1_000_003 + trial[rows]
        random_key = torch.rand(len(rows), generator=generator)
        order = torch.argsort(random_key)
        order = order[torch.argsort(group[order], stable=True)]
        sorted_group = group[order]
        _, counts = torch.unique_consecutive(sorted_group, return_counts=True)
        starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        rank = torch.empty(len(rows), dtype=torch.long)
        rank[order] = torch.arange(len(rows)) - starts
        size_of = torch.repeat_interleave(counts, counts)
        quota = torch.empty(len(rows), dtype=torch.long)
        quota[order] = torch.clamp(torch.ceil(size_of * size.window_fraction).long(), min=1)
        keep &= rank < quota
    return rows[keep]
