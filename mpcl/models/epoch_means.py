"""Sample-weighted epoch means of scalar loss terms, accumulated on the device.

Why not ``self.log(..., on_epoch=True)`` at every step: each ``log`` call costs Lightning a few
hundred microseconds of Python bookkeeping, per value and per step, which for a small model was
most of the framework's per-step overhead. Summing the terms into one device tensor costs a
stack, a multiply and an add, with no host-device synchronisation; the means are logged once at
the end of the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor


class EpochMeans:
    r"""Running sums of named scalars, weighted by batch size.

    After batches ``b`` with sizes ``n_b`` and values ``v_{b,k}``:

    .. math::
        \bar v_k = \frac{\sum_b n_b v_{b,k}}{\sum_b n_b}

    which is the mean over samples when every ``v_{b,k}`` is a batch mean (what Lightning's
    ``on_epoch=True`` computes too). Sums are float32, as Lightning's own accumulators.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every update (call at the start and end of an epoch)."""
        self._names: tuple[str, ...] = ()
        self._sums: Tensor | None = None
        self.count = 0

    def update(self, values: Mapping[str, Tensor], batch_size: int) -> None:
        """Add one batch's scalar values (detached), weighted by ``batch_size``."""
        names = tuple(values)
        weighted = torch.stack([v.detach().float() for v in values.values()]) * batch_size
        if self._sums is None:
            self._names, self._sums = names, weighted
        elif names != self._names:
            raise ValueError(f"EpochMeans.update: got terms {names}, expected {self._names}")
        else:
            self._sums = self._sums + weighted
        self.count += batch_size

    def compute(self, reduce_sum: Callable[[Tensor], Tensor] | None = None) -> dict[str, Tensor]:
        """The weighted means, ``{}`` before any update.

        Args:
            reduce_sum: Sums a tensor over processes (e.g. ``trainer.strategy.reduce``); then the
                means are over every sample of every process. ``None`` keeps them local.
        """
        if self._sums is None:
            return {}
        totals = torch.cat([self._sums, self._sums.new_tensor([float(self.count)])])
        if reduce_sum is not None:
            totals = reduce_sum(totals)
        means = totals[:-1] / totals[-1]
        return dict(zip(self._names, means.unbind(), strict=True))
