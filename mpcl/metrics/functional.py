r"""The six label-distribution metrics, per sample.

Each function takes predictions ``p`` and targets ``d`` of shape ``[N, C]`` and returns the
per-sample values ``[N]`` in float64. Conventions follow PyLDL (``python-ldl`` 0.1.2,
``pyldl.metrics``), against which the tests check agreement to 1e-10:

* every computation is in float64;
* Clark, Canberra and Kullback-Leibler clip both inputs to ``[eps, 1]`` (``eps`` the float64
  machine epsilon) without renormalising, so zeros in either input give finite values;
* Cosine normalises each row, a zero row staying zero (as ``sklearn``'s ``normalize`` does):
  ``cos = 1 - ||u/|u| - v/|v|||^2 / 2``, which is the usual cosine for non-zero rows.

Intersection is computed as written, ``sum_i min(d_i, p_i)``; PyLDL computes
``1 - ||d - p||_1 / 2``, which is the same number whenever both rows sum to 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

EPS = torch.finfo(torch.float64).eps


def _prepare(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must have the same shape, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}"
        )
    if preds.ndim != 2:
        raise ValueError(
            f"expected [N, C] inputs (N samples, C emotions), got {tuple(preds.shape)}"
        )
    return preds.to(torch.float64), target.to(torch.float64)


def _clipped(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    p, d = _prepare(preds, target)
    return p.clamp(EPS, 1.0), d.clamp(EPS, 1.0)


def chebyshev(preds: Tensor, target: Tensor) -> Tensor:
    r"""Chebyshev distance :math:`\max_i |d_i - p_i|` (lower is better)."""
    p, d = _prepare(preds, target)
    return (d - p).abs().amax(dim=1)


def clark(preds: Tensor, target: Tensor) -> Tensor:
    r"""Clark distance :math:`\sqrt{\sum_i ((d_i - p_i) / (d_i + p_i))^2}` (lower is better)."""
    p, d = _clipped(preds, target)
    return (((d - p) / (d + p)) ** 2).sum(dim=1).sqrt()


def canberra(preds: Tensor, target: Tensor) -> Tensor:
    r"""Canberra distance :math:`\sum_i |d_i - p_i| / (d_i + p_i)` (lower is better)."""
    p, d = _clipped(preds, target)
    return ((d - p).abs() / (d + p)).sum(dim=1)


def kl_divergence(preds: Tensor, target: Tensor) -> Tensor:
    r"""Kullback-Leibler divergence :math:`\sum_i d_i \ln(d_i / p_i)` (lower is better)."""
    p, d = _clipped(preds, target)
    return (d * (d.log() - p.log())).sum(dim=1)


def cosine(preds: Tensor, target: Tensor) -> Tensor:
    r"""Cosine similarity :math:`\sum_i d_i p_i / (\|d\| \|p\|)` (higher is better)."""
    p, d = _prepare(preds, target)

    def unit(x: Tensor) -> Tensor:
        norm = x.norm(dim=1, keepdim=True)
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)

    return 1.0 - 0.5 * ((unit(d) - unit(p)) ** 2).sum(dim=1)


def intersection(preds: Tensor, target: Tensor) -> Tensor:
    r"""Intersection similarity :math:`\sum_i \min(d_i, p_i)` (higher is better)."""
    p, d = _prepare(preds, target)
    return torch.minimum(d, p).sum(dim=1)


@dataclass(frozen=True)
class MetricInfo:
    """A metric's key (as logged: ``val/<name>``), display name, direction and function."""

    name: str
    display: str
    higher_is_better: bool
    function: Callable[[Tensor, Tensor], Tensor]


#: The six metrics in the canonical column order of every table.
LDL_METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("chebyshev", "Chebyshev", False, chebyshev),
    MetricInfo("clark", "Clark", False, clark),
    MetricInfo("canberra", "Canberra", False, canberra),
    MetricInfo("kl", "KL", False, kl_divergence),
    MetricInfo("cosine", "Cosine", True, cosine),
    MetricInfo("intersection", "Intersection", True, intersection),
)
LDL_METRIC_FUNCTIONS = {m.name: m.function for m in LDL_METRICS}
HIGHER_IS_BETTER = {m.name: m.higher_is_better for m in LDL_METRICS}
