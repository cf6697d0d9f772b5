"""The LightningModule that every emotion-distribution model builds on.

It owns what all models share: the KL objective plus model-specific auxiliary terms, the metric
collection per stage, logging, and the optimizer / scheduler (both configurable from YAML through
LightningCLI). A model subclass implements :meth:`EmotionDistributionModule.forward` and, when it
has auxiliary losses, :meth:`EmotionDistributionModule.auxiliary_losses`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from datamodules.scoring import scored_rows
from mpcl.guards import check_finite_epoch
from mpcl.losses import clamped_log, kl_divergence_loss
from mpcl.metrics import LDLMetrics
from mpcl.models.epoch_means import EpochMeans

Batch = Mapping[str, Tensor]


def adam(params: Iterable[Any]) -> torch.optim.Optimizer:
    """Adam with HeLo's published settings (lr 1e-3, weight decay 1e-5): the default optimizer."""
    return torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5)


def exponential_decay(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch exponential learning-rate decay with gamma 0.99: the default scheduler."""
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.99)


class EmotionDistributionModule(LightningModule):
    """Base class: predicts a distribution over C emotions from a batch of modality tensors.

    Objective: ``L = KL(d || d_hat) + sum_k lambda_k * L_k`` where the auxiliary terms ``L_k``
    and their weights come from :meth:`auxiliary_losses`. Every term is logged as
    ``<stage>/loss_<name>`` and the total as ``<stage>/loss``; the six label-distribution metrics
    are logged as ``<stage>/<metric>`` (e.g. ``val/kl``) once per epoch, synchronised across
    processes. Training terms are logged as ``train/<term>_epoch`` (the epoch mean) and
    ``train/<term>_step`` (every ``trainer.log_every_n_steps`` batches, when a logger would write
    them). Everything is accumulated on the device and logged in the ``on_*_epoch_end`` hooks:
    subclasses that override a hook named ``on_{train,validation,test}_epoch_{start,end}`` must
    call ``super()``.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        optimizer: Callable building the optimizer from the parameters.
        scheduler: Callable building an epoch-wise learning-rate scheduler, or ``None``.
    """

    #: Metric that checkpointing and early stopping watch, and its direction.
    monitor = "val/kl"
    mode = "min"
    #: Reduction of the KL term over the batch: ``"mean"``, or ``"sum"`` (the batch mean times B,
    #: e.g. HeLo's published objective). Subclasses may also set it per instance.
    kl_reduction: Literal["mean", "sum"] = "mean"

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__()
        self.metadata = DatasetMetadata.coerce(metadata)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Checkpoints keep only plain-Python hyper-parameters so that they load with
        # torch.load(weights_only=True); the optimizer callables are rebuilt from the config.
        self.save_hyperparameters(ignore=["metadata", "optimizer", "scheduler"])
        self.hparams["metadata"] = self.metadata.to_dict()
        metrics = LDLMetrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._epoch_means = {stage: EpochMeans() for stage in ("train", "val", "test")}

    @property
    def num_emotions(self) -> int:
        """The number C of emotion categories."""
        return self.metadata.num_emotions

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Predict the emotion distribution of every sample in ``batch``.

        Args:
            batch: Modality tensors keyed as in the metadata, plus ``target`` (which models may use
                in training only, e.g. for memory updates) and bookkeeping ids.

        Returns:
            The predicted distributions ``[B, C]`` and an ``aux`` dict. ``aux["log_probs"]``, when
            present, is used for a numerically stable KL; other entries are for analysis and for
            :meth:`auxiliary_losses`.
        """
        raise NotImplementedError

    def auxiliary_losses(
        self, batch: Batch, preds: Tensor, aux: Mapping[str, Tensor]
    ) -> dict[str, tuple[float, Tensor]]:
        """Model-specific loss terms as ``name -> (weight, value)``; none by default."""
        return {}

    def compute_losses(
        self, batch: Batch, preds: Tensor, aux: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """All loss terms, unweighted, plus ``loss``: the weighted total that is optimised."""
        log_preds = aux.get("log_probs")
        if log_preds is None:
            log_preds = clamped_log(preds)
        kl = kl_divergence_loss(batch["target"], log_preds)
        if self.kl_reduction == "sum":
            kl = kl * len(log_preds)
        terms = {"kl": kl}
        total = kl
        for name, (weight, value) in self.auxiliary_losses(batch, preds, aux).items():
            terms[name] = value
            total = total + weight * value
        terms["loss"] = total
        return terms

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        preds, aux = self(batch)
        losses = self.compute_losses(batch, preds, aux)
        batch_size = len(batch["target"])
        terms = {"loss" if k == "loss" else f"loss_{k}": v.detach() for k, v in losses.items()}
        # No self.log per step and value: Lightning's bookkeeping of one call costs more than a
        # small model's whole step. Sums stay on the device until the epoch ends.
        self._epoch_means[stage].update(terms, batch_size)
        # A protocol may score a subset of the evaluation rows (datamodules.scoring).
        getattr(self, f"{stage}_metrics").update(
            *scored_rows(batch, preds.detach(), batch["target"])
        )
        if stage == "train" and self._is_step_logging_batch():
            self.log_dict(
                {f"train/{k}_step": v for k, v in terms.items()},
                on_step=True,
                on_epoch=False,
                batch_size=batch_size,
            )
        return losses["loss"]

    def _is_step_logging_batch(self) -> bool:
        """Whether this training batch is one whose step values a logger writes.

        The same rule as Lightning's: every ``trainer.log_every_n_steps``-th batch.
        """
        batch_index = self.trainer.fit_loop.epoch_loop.total_batch_idx
        return (batch_index + 1) % max(1, self.trainer.log_every_n_steps) == 0

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch means of the loss terms and the metrics of ``stage``, then reset them.

        Training loss terms are per-process means (as before, unsynchronised); evaluation terms are
        summed over processes first, so they are means over every evaluated sample. The metrics
        synchronise their states in ``compute``.
        """
        means = self._epoch_means[stage]
        if means.count == 0:
            return
        if stage == "train":
            values = {f"train/{k}_epoch": v for k, v in means.compute().items()}
        else:
            reduce_sum = partial(self.trainer.strategy.reduce, reduce_op="sum")
            values = {f"{stage}/{k}": v for k, v in means.compute(reduce_sum).items()}
        metrics = getattr(self, f"{stage}_metrics")
        values.update(metrics.compute())
        check_finite_epoch(stage, values, self.current_epoch)  # a NaN loss stops the run
        self.log_dict(values, on_step=False, on_epoch=True)
        self._reset_epoch(stage)

    def _reset_epoch(self, stage: str) -> None:
        self._epoch_means[stage].reset()
        getattr(self, f"{stage}_metrics").reset()

    def on_train_epoch_start(self) -> None:
        """Start the training epoch's sums afresh."""
        self._reset_epoch("train")

    def on_train_epoch_end(self) -> None:
        """Log the training epoch's loss terms and metrics."""
        self._log_epoch("train")

    def on_validation_epoch_start(self) -> None:
        """Start the validation sums afresh."""
        self._reset_epoch("val")

    def on_validation_epoch_end(self) -> None:
        """Log the validation loss terms and metrics (``val/kl`` is the monitor)."""
        self._log_epoch("val")

    def on_test_epoch_start(self) -> None:
        """Start the test sums afresh."""
        self._reset_epoch("test")

    def on_test_epoch_end(self) -> None:
        """Log the test loss terms and metrics."""
        self._log_epoch("test")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """One optimisation step's loss."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Accumulate validation losses and metrics."""
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        """Accumulate test losses and metrics over every (scored) test sample."""
        self._shared_step(batch, "test")

    def predict_step(
        self, batch: Batch, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Predicted distributions with the row ids they belong to."""
        preds, _ = self(batch)
        out = {"preds": preds}
        for key in ("index", "subject", "trial", "target"):
            if key in batch:
                out[key] = batch[key]
        return out

    def configure_optimizers(self) -> Any:
        """The optimizer (and epoch-wise scheduler) built from the configured callables."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
