"""TorchMetrics classes of the six label-distribution metrics.

Each metric accumulates the float64 sum of its per-sample values and the sample count; both
states are summed across processes, so a distributed evaluation returns exactly the mean over
every sample that any process scored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from mpcl.metrics import functional as F


class _PerSampleMean(Metric):
    """Mean over all samples of a per-sample metric ``function(preds, target) -> [N]``."""

    is_differentiable = False
    full_state_update = False
    function: ClassVar[Callable[[Tensor, Tensor], Tensor]]

    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the batch's per-sample values (``preds`` and ``target`` are ``[N, C]``)."""
        values = type(self).function(preds, target)
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        """The mean over every sample seen (NaN before any update)."""
        return self.total / self.count


class Chebyshev(_PerSampleMean):
    r"""Chebyshev distance :math:`\max_i |d_i - p_i|`, averaged over samples.

    Example:
        >>> metric = Chebyshev()
        >>> metric(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]))
        tensor(0.5000, dtype=torch.float64)
    """

    higher_is_better = False
    function = staticmethod(F.chebyshev)


class Clark(_PerSampleMean):
    r"""Clark distance :math:`\sqrt{\sum_i ((d_i - p_i)/(d_i + p_i))^2}`, inputs in [eps, 1].

    Example:
        >>> metric = Clark()
        >>> metric(torch.tensor([[0.25, 0.75]]), torch.tensor([[0.75, 0.25]]))
        tensor(0.7071, dtype=torch.float64)
    """

    higher_is_better = False
    function = staticmethod(F.clark)


class Canberra(_PerSampleMean):
    r"""Canberra distance :math:`\sum_i |d_i - p_i|/(d_i + p_i)`, inputs clipped to [eps, 1].

    Example:
        >>> metric = Canberra()
        >>> metric(torch.tensor([[0.25, 0.75]]), torch.tensor([[0.75, 0.25]]))
        tensor(1., dtype=torch.float64)
    """

    higher_is_better = False
    function = staticmethod(F.canberra)


class KLDivergence(_PerSampleMean):
    r"""Kullback-Leibler divergence :math:`\sum_i d_i \ln(d_i/p_i)`, inputs clipped to [eps, 1].

    Example:
        >>> metric = KLDivergence()
        >>> metric(torch.tensor([[0.25, 0.75]]), torch.tensor([[0.5, 0.5]]))
        tensor(0.1438, dtype=torch.float64)
    """

    higher_is_better = False
    function = staticmethod(F.kl_divergence)


class Cosine(_PerSampleMean):
    r"""Cosine similarity :math:`\sum_i d_i p_i / (\|d\|\|p\|)`.

    Example:
        >>> metric = Cosine()
        >>> metric(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor(0.7071, dtype=torch.float64)
    """

    higher_is_better = True
    function = staticmethod(F.cosine)


class Intersection(_PerSampleMean):
    r"""Intersection similarity :math:`\sum_i \min(d_i, p_i)`.

    Example:
        >>> metric = Intersection()
        >>> metric(torch.tensor([[0.25, 0.75]]), torch.tensor([[0.5, 0.5]]))
        tensor(0.7500, dtype=torch.float64)
    """

    higher_is_better = True
    function = staticmethod(F.intersection)
