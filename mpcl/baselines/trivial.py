"""Trivial predictors: the floor any emotion-distribution model has to clear.

* :class:`UniformModule`: ``d_hat = 1 / C`` for every row;
* :class:`TrainMeanModule`: the mean training distribution for every row;
* :class:`SubjectMeanModule`: the mean training distribution of the row's subject
  (subject-dependent protocols only: under ``kfold`` / ``loso`` the test subjects have no training
  rows).

They run through the whole pipeline like any model (see :mod:`mpcl.baselines.fitted`), so their
numbers come from the same test rows, metrics and result files. The test report
(:class:`~mpcl.callbacks.results.TestResultsReport`) computes the first two on the side for every
model; the pipeline versions must agree with it, which is a cheap end-to-end check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from datamodules.protocols import SUBJECT_DEPENDENT
from mpcl.baselines.fitted import ClosedFormModule
from mpcl.losses import clamped_log
from mpcl.models.base import Batch


def _batch_rows(batch: Batch) -> Tensor:
    """Any per-row tensor of the batch (``subject`` is always there; the target may not be)."""
    return batch["subject"] if "subject" in batch else next(iter(batch.values()))


def _constant_prediction(batch: Batch, distribution: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """One distribution ``[C]`` repeated for every row of ``batch``, with its log.

    Only the batch size is read from the batch, so unlabelled batches (prediction) work too.
    """
    rows = _batch_rows(batch)
    preds = distribution.to(device=rows.device, dtype=torch.float32)
    preds = preds.expand(len(rows), len(distribution))
    return preds, {"log_probs": clamped_log(preds)}


class UniformModule(ClosedFormModule):
    """Predicts the uniform distribution ``d_hat_j = 1 / C``; nothing to fit.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
    """

    def __init__(self, metadata: DatasetMetadata | dict[str, Any]) -> None:
        super().__init__(metadata)

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Nothing to fit."""

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """``1 / C`` for every row of the batch."""
        uniform = torch.full((self.num_emotions,), 1.0 / self.num_emotions)
        return _constant_prediction(batch, uniform)


class TrainMeanModule(ClosedFormModule):
    """Predicts the mean training distribution ``d_bar = (1 / N) sum_i d_i`` for every row.

    The mean is accumulated in float64 and renormalised (``datamodule.train_target_mean()``), the
    same value the test report's ``train-mean`` row uses.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
    """

    data_sized_buffers = ("mean",)

    def __init__(self, metadata: DatasetMetadata | dict[str, Any]) -> None:
        super().__init__(metadata)
        self.register_buffer("mean", torch.empty(0))

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Store the training mean distribution."""
        if hasattr(datamodule, "train_target_mean"):
            mean = datamodule.train_target_mean()
        else:
            mean = train["target"].to(torch.float64).mean(dim=0)
            mean = (mean / mean.sum()).float()
        self.mean = mean.to(self.device)

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The training mean for every row of the batch."""
        self.check_fitted()
        return _constant_prediction(batch, self.mean)


def subject_means(subject: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean target distribution of every subject.

    ``d_bar_s = sum_{i: s_i = s} d_i / n_s``, accumulated in float64 and renormalised to sum 1.

    Args:
        subject: Subject id per row ``[N]`` (integers).
        target: Target distributions ``[N, C]``.

    Returns:
        The sorted subject ids ``[S]`` and their mean distributions ``[S, C]`` (float32).
    """
    ids, inverse = torch.unique(subject, sorted=True, return_inverse=True)
    sums = torch.zeros(len(ids), target.shape[1], dtype=torch.float64)
    sums.index_add_(0, inverse, target.to(torch.float64))
    means = sums / sums.sum(dim=1, keepdim=True)
    return ids, means.float()


class SubjectMeanModule(ClosedFormModule):
    """Predicts the mean training distribution of the row's own subject.

    Only meaningful when every test subject has training rows, i.e. under the subject-dependent
    protocols (``random-window``, ``temporal``, ``clip-holdout``); fitting under ``kfold`` or
    ``loso`` raises, and so does a test row of a subject never seen in training.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
    """

    data_sized_buffers = ("subject_ids", "means")

    def __init__(self, metadata: DatasetMetadata | dict[str, Any]) -> None:
        super().__init__(metadata)
        self.register_buffer("subject_ids", torch.empty(0, dtype=torch.long))
        self.register_buffer("means", torch.empty(0, self.num_emotions))

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Store the mean training distribution of every subject."""
        protocol = getattr(datamodule, "protocol", None)
        if protocol not in SUBJECT_DEPENDENT:
            raise ValueError(
                f"SubjectMeanModule: data.init_args.protocol is {protocol!r}, a protocol whose "
                "test subjects have no training rows; expected a subject-dependent protocol, "
                f"one of {sorted(SUBJECT_DEPENDENT)}"
            )
        ids, means = subject_means(train["subject"], train["target"])
        self.subject_ids = ids.to(device=self.device, dtype=torch.long)
        self.means = means.to(self.device)

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Each row's subject mean (vectorised lookup by ``searchsorted``)."""
        self.check_fitted()
        subject = batch["subject"].to(device=self.subject_ids.device, dtype=torch.long)
        slot = torch.searchsorted(self.subject_ids, subject).clamp_max(len(self.subject_ids) - 1)
        known = self.subject_ids[slot] == subject
        if not bool(known.all()):
            unseen = sorted({int(s) for s in subject[~known]})
            raise ValueError(
                f"SubjectMeanModule: batch['subject'] has subjects {unseen} without training "
                f"rows (fitted subjects: {self.subject_ids.tolist()}); use a subject-dependent "
                "protocol"
            )
        preds = self.means[slot].to(device=subject.device, dtype=torch.float32)
        return preds, {"log_probs": clamped_log(preds)}
