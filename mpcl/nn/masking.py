"""What every model does first with a batch that carries modality presence masks.

A batch may mark a modality missing in some windows (``batch["present:<m>"]``, see
:mod:`datamodules.modality_mask`). The contract of every model in the project: **a missing
modality's values have no influence on any output**. Each model's ``forward`` starts with
:func:`fill_missing`, which replaces the values of missing windows by zeros; since the features
are standardised with training statistics, zero is the training mean (mean imputation). Whatever
the data held there (zeros, noise, 1e6, NaN) is then gone before the first layer, so the
guarantee holds by construction. Models that can do better than mean imputation use the presence
columns themselves on top (token masks in attention, skipped branches, missing indicators):
see ``docs/robustness.md`` for the behaviour of each model.

See docs/model.md, section 'Missing modalities'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from datamodules.modality_mask import presence, present_key


def fill_missing(batch: Mapping[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """A shallow copy of ``batch`` whose missing windows hold zeros (the training mean).

    Args:
        batch: A batch dict; modalities without a presence column are left as they are.
        modalities: The modalities the model reads.

    Returns:
        The batch; the same tensors where nothing is missing (no copy, no cost).
    """
    out = dict(batch)
    for name in modalities:
        present = presence(batch, name)
        if present is None or name not in batch:
            continue
        values = batch[name]
        shape = (len(values),) + (1,) * (values.dim() - 1)
        keep = present.to(values.device).view(shape)
        out[name] = torch.where(keep, values, torch.zeros((), dtype=values.dtype))
    return out


def presence_matrix(
    batch: Mapping[str, Tensor], modalities: Sequence[str], like: Tensor
) -> Tensor | None:
    """Presence ``[B, M]`` (bool) of ``modalities``, or ``None`` when all are present everywhere.

    ``like`` is any ``[B, ...]`` tensor on the model's device; its size is read only when a
    presence column exists, so unmasked forwards stay shape-generic (``torch.export``).
    """
    if not any(present_key(m) in batch for m in modalities):
        return None
    num_rows, device = like.shape[0], like.device
    columns = []
    for name in modalities:
        present = presence(batch, name)
        if present is None:
            present = torch.ones(num_rows, dtype=torch.bool, device=device)
        columns.append(present.to(device))
    return torch.stack(columns, dim=1)


def branch_presence(
    batch: Mapping[str, Tensor], modalities: Sequence[str], like: Tensor
) -> Tensor | None:
    """Whether any of ``modalities`` is present in each window ``[B]``, or ``None`` (always)."""
    matrix = presence_matrix(batch, modalities, like)
    return None if matrix is None else matrix.any(dim=1)
