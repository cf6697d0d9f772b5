"""Early stopping per model: Lightning's ``EarlyStopping`` rule, run for S models at once.

A one-model run stops when its monitored validation metric has not improved for ``patience``
validations (or is not finite, or crosses a threshold). With many models each one stops on its
own: a stopped model sits out every later step (no update, no new best state), exactly where its
one-model run would have ended, while the others go on.

The rule is Lightning's (``lightning.pytorch.callbacks.EarlyStopping``): with ``delta`` the
signed ``min_delta`` (negated for ``mode="min"``), a value ``v`` improves on the best ``b`` when
``v - delta < b`` (min) or ``v - delta > b`` (max); the wait count is reset on improvement and
the model stops when it reaches ``patience``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """The options of one ``EarlyStopping`` callback that decide when a model stops.

    Attributes:
        monitor: ``val/<metric>``.
        mode: ``min`` or ``max``.
        patience: Validations without improvement before stopping.
        delta: Lightning's signed ``min_delta`` (already negated for ``min``).
        check_finite: Stop when the metric is NaN or infinite.
        stopping_threshold: Stop once the metric is better than this.
        divergence_threshold: Stop once the metric is worse than this.
    """

    monitor: str
    mode: str = "min"
    patience: int = 3
    delta: float = 0.0
    check_finite: bool = True
    stopping_threshold: float | None = None
    divergence_threshold: float | None = None

    @classmethod
    def from_callback(cls, callback: EarlyStopping) -> EarlyStoppingSettings:
        """The settings of a configured callback.

        Raises:
            NotImplementedError: ``check_on_train_epoch_end=True`` (the check would read the
                previous epoch's validation values).
        """
        if getattr(callback, "_check_on_train_epoch_end", None):
            raise NotImplementedError(
                "EarlyStopping.check_on_train_epoch_end=True is not supported by the "
                "many-subjects mode; leave it unset (the check runs after validation)"
            )
        return cls(
            monitor=callback.monitor,
            mode=callback.mode,
            patience=int(callback.patience),
            delta=float(callback.min_delta),
            check_finite=bool(callback.check_finite),
            stopping_threshold=callback.stopping_threshold,
            divergence_threshold=callback.divergence_threshold,
        )


class PerModelEarlyStopping:
    """The early-stopping state of S models.

    Args:
        settings: The rule.
        num_models: S.
    """

    def __init__(self, settings: EarlyStoppingSettings, num_models: int) -> None:
        self.settings = settings
        sign = 1.0 if settings.mode == "min" else -1.0
        self.best = torch.full((num_models,), sign * float("inf"), dtype=torch.float64)
        self.wait = torch.zeros(num_models, dtype=torch.int64)
        self.stopped = torch.zeros(num_models, dtype=torch.bool)

    def _better(self, a: Tensor, b: Tensor | float) -> Tensor:
        return a < b if self.settings.mode == "min" else a > b

    def update(self, values: Tensor) -> Tensor:
        """Apply one validation's values ``[S]``; returns the models that stop now.

        Models stopped earlier are left as they are.
        """
        s = self.settings
        values = values.to(torch.float64)
        running = ~self.stopped
        stop = torch.zeros_like(self.stopped)
        if s.check_finite:
            stop |= ~torch.isfinite(values)
        decided = stop.clone()
        if s.stopping_threshold is not None:
            hit = ~decided & self._better(values, s.stopping_threshold)
            stop |= hit
            decided |= hit
        if s.divergence_threshold is not None:
            # Lightning: monitor_op(-current, -threshold), i.e. worse than the threshold.
            hit = ~decided & self._better(-values, -s.divergence_threshold)
            stop |= hit
            decided |= hit
        improved = ~decided & self._better(values - s.delta, self.best)
        worse = ~decided & ~improved
        self.best = torch.where(running & improved, values, self.best)
        self.wait = torch.where(running & improved, torch.zeros_like(self.wait), self.wait)
        self.wait = torch.where(running & worse, self.wait + 1, self.wait)
        stop |= worse & (self.wait >= s.patience)
        stop &= running
        self.stopped |= stop
        return stop
