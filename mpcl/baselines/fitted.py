"""Base class of the baselines fitted in closed form from the whole training split.

The trivial predictors, AA-kNN and SA-BFGS are not trained by gradient steps on mini-batches.
They still run through the ordinary Lightning pipeline (``mpcl fit ... --test_after_fit true`` and
the protocol runner) so that they see the same splits, standardisation, metrics and result files
as every other model:

* at ``on_fit_start`` (after the datamodule is set up, before the sanity check) the module reads
  the whole training split from ``trainer.datamodule.split_rows("train")`` and fits itself once;
* the training loop then runs with no optimizer: ``training_step`` only logs the training metrics
  of the fitted model (unless :attr:`ClosedFormModule.score_training_rows` is off) and returns
  ``None``, so an epoch is one pass of logging; one epoch (``trainer.max_epochs: 1``) is all these
  models need;
* validation, checkpointing, testing and prediction are those of any model. Fitted tensors are
  buffers, saved in checkpoints; buffers whose size depends on the data (a kNN bank, one row per
  subject) start empty and take the checkpoint's shape when a checkpoint is loaded.

They have no trainable parameters (SA-BFGS has parameters, fitted by L-BFGS, never by the
trainer's optimizer), so run them on one device: DDP refuses modules without gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from mpcl.models.base import Batch, EmotionDistributionModule
from mpcl.nn.masking import fill_missing


def concat_features(batch: Mapping[str, Tensor], modalities: Sequence[str]) -> Tensor:
    """Flatten every modality and concatenate: ``[B, sum_m prod(shape_m)]``.

    The datamodule has already standardised each feature with training statistics, so this is
    the "concatenated standardised features" input of the classic label-distribution learners.
    A modality missing in a window (presence mask) is zero-filled there: the training mean, the
    standard imputation for these learners (:func:`~mpcl.nn.masking.fill_missing`).
    """
    batch = fill_missing(batch, modalities)
    return torch.cat([batch[m].flatten(start_dim=1) for m in modalities], dim=1)


def check_modalities(
    metadata: DatasetMetadata, modalities: Sequence[str] | None, owner: str
) -> tuple[str, ...]:
    """The configured modalities (default: all), each known to the metadata."""
    chosen = tuple(modalities) if modalities else metadata.modalities
    unknown = [m for m in chosen if m not in metadata.modality_shapes]
    if unknown:
        raise ValueError(
            f"{owner}: model.init_args.modalities {unknown} are not in the data set "
            f"(available: {sorted(metadata.modality_shapes)})"
        )
    return chosen


class ClosedFormModule(EmotionDistributionModule):
    """A model fitted once from the whole training split, then evaluated like any model.

    Subclasses implement :meth:`fit_training_split` and ``forward``; they list buffers whose size
    depends on the data in :attr:`data_sized_buffers` (registered empty in ``__init__``).

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
    """

    #: Buffers registered with a placeholder shape and resized to the loaded checkpoint's.
    data_sized_buffers: tuple[str, ...] = ()
    #: Whether the training epoch scores the fitted model on the training rows (off where that
    #: number is meaningless and costly, e.g. kNN, where every row is its own neighbour).
    score_training_rows: bool = True

    def __init__(self, metadata: Any) -> None:
        super().__init__(metadata, scheduler=None)
        # Resize data-sized buffers before any state dict is copied into them; this runs for
        # Lightning's restore, load_from_checkpoint and a plain load_state_dict alike.
        self.register_load_state_dict_pre_hook(_resize_data_sized_buffers)

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Fit the model from every training row.

        Args:
            train: The training split as one batch dict (modalities, ``target``, ``subject``,
                ``trial``, ``index``), on the CPU, standardised like the batches.
            datamodule: The datamodule (for its protocol, metadata, ...).
        """
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        """Whether every data-sized buffer holds fitted values (non-empty)."""
        return all(getattr(self, name).numel() > 0 for name in self.data_sized_buffers)

    def check_fitted(self) -> None:
        """Raise a clear error when the model is used before it was fitted or loaded."""
        if not self.is_fitted:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: run `mpcl fit` (it fits from the training "
                "split at the start of fit) or load a checkpoint written by such a run"
            )

    def on_fit_start(self) -> None:
        """Fit from the datamodule's whole training split (before the sanity check)."""
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "split_rows"):
            raise RuntimeError(
                f"{type(self).__name__} fits from the datamodule's training split: pass a "
                "datamodule.FeatureDataModule (data.class_path) to fit, got "
                f"{type(datamodule).__name__}"
            )
        train = datamodule.split_rows("train")
        with torch.no_grad():
            self.fit_training_split(train, datamodule)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        """Log the fitted model's training loss and metrics; no optimisation step."""
        if not self.score_training_rows:
            return
        with torch.no_grad():
            self._shared_step(batch, "train")

    def configure_optimizers(self) -> None:
        """No optimizer: the model is fitted at ``on_fit_start``."""
        return None


def _resize_data_sized_buffers(
    module: torch.nn.Module, state_dict: Mapping[str, Tensor], prefix: str, *args: Any
) -> None:
    """``load_state_dict`` pre-hook: give each data-sized buffer the stored tensor's shape."""
    for name in getattr(module, "data_sized_buffers", ()):
        stored = state_dict.get(prefix + name)
        current = getattr(module, name)
        if stored is not None and stored.shape != current.shape:
            setattr(module, name, torch.empty_like(stored, device=current.device))
