"""Checks that stop a run instead of letting non-finite numbers through silently."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


class NonFiniteError(RuntimeError):
    """A loss, score or prediction that should be a finite number is NaN or infinite."""


def check_finite_epoch(stage: str, values: Mapping[str, Tensor], epoch: int) -> None:
    """Stop training when an epoch's mean loss is NaN or infinite.

    Called with the logged epoch means of ``train`` and ``val``; any term of the loss that is not
    finite makes the whole epoch meaningless (and every checkpoint score after it).

    Raises:
        NonFiniteError: Naming the stage, epoch and the non-finite terms.
    """
    if stage not in ("train", "val"):
        return
    keys = [k for k in values if "loss" in k or k == f"{stage}/kl"]
    if not keys:
        return
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).cpu() for k in keys])
    finite = torch.isfinite(stacked)
    if bool(finite.all()):
        return
    bad = {k: float(v) for k, v, ok in zip(keys, stacked, finite, strict=True) if not ok}
    raise NonFiniteError(
        f"epoch {epoch}: the {'training' if stage == 'train' else 'validation'} loss is not "
        f"finite ({', '.join(f'{k}={v}' for k, v in bad.items())}); the run is stopped. Check the "
        "features for extreme values and the learning rate"
    )


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON ``null``), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
