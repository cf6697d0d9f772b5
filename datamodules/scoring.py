"""Which evaluation rows are scored: every row, or the first row of every evaluation batch.

The released HeLo code scores only ``predict[0]`` of each test batch (kaio-99/HeLo at 08dad27,
``train_validate.py`` lines 45 and 74) and averages the per-batch metrics. With
``scoring="first-per-batch"`` the datamodule marks those rows in a boolean batch column
:data:`SCORED_KEY`; the model still sees whole batches (a prediction of the reference model
depends on the rest of its batch), and the metrics and the test report count the marked rows
only. The marks are fixed by each row's position in its split (``position % eval_batch_size ==
0``), so on one device they are exactly the first rows of the batches; under DDP the same rows are
scored, each once, although the batches differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import torch
from torch import Tensor

Scoring = Literal["all", "first-per-batch"]
SCORINGS: tuple[str, ...] = get_args(Scoring)
#: Batch column that marks the scored rows of an evaluation batch (absent: every row scores).
SCORED_KEY = "scored"


def first_per_batch(num_rows: int, batch_size: int) -> Tensor:
    """``[num_rows]`` bool: ``True`` at positions ``0, batch_size, 2 batch_size, ...``."""
    if batch_size < 1:
        raise ValueError(f"first_per_batch: batch_size must be >= 1, got {batch_size}")
    return torch.arange(num_rows) % batch_size == 0


def scored_rows(batch: Mapping[str, Tensor], *columns: Tensor) -> tuple[Tensor, ...]:
    """``columns`` restricted to the batch's scored rows (unchanged without :data:`SCORED_KEY`).

    Args:
        batch: The batch dict.
        columns: Tensors with the batch's rows on their first axis.
    """
    mask = batch.get(SCORED_KEY)
    if mask is None:
        return columns
    return tuple(column[mask] for column in columns)
