"""Model checkpointing with a ``last.ckpt`` after every epoch and finite-only best scores."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class EpochCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` that a resume can rely on.

    Two differences from Lightning 2.6's class:

    * with ``save_last``, ``last.ckpt`` is rewritten at the end of **every** epoch (Lightning
      writes it only when a top-k checkpoint was saved at the same step, so with a monitor it
      lagged behind the training whenever the score did not improve);
    * a non-finite monitored score (NaN, ``inf``) is never ranked, so it can never become the
      "best" checkpoint (Lightning ranks NaN as the worst score but still saves it while fewer
      than ``save_top_k`` checkpoints exist).
    """

    _last_saved_step: int = -1

    def _save_last_checkpoint(
        self, trainer: Trainer, monitor_candidates: dict[str, Tensor]
    ) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_saved_step = trainer.global_step

    def _save_monitor_checkpoint(
        self, trainer: Trainer, monitor_candidates: dict[str, Tensor]
    ) -> None:
        current = monitor_candidates.get(self.monitor) if self.monitor else None
        if current is not None and not math.isfinite(float(torch.as_tensor(current))):
            return  # never a best checkpoint with a NaN / inf score
        super()._save_monitor_checkpoint(trainer, monitor_candidates)

    def _ensure_last(self, trainer: Trainer) -> None:
        if (
            not self.save_last
            or trainer.fast_dev_run
            or trainer.sanity_checking
            or trainer.state.fn != "fit"
            or self._last_saved_step == trainer.global_step
        ):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's save, then ``last.ckpt`` if it was not written at this step."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._ensure_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's save, then ``last.ckpt`` if it was not written at this step."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._ensure_last(trainer)
