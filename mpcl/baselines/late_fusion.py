"""Late fusion: one distribution per branch, mixed with a learned weight.

The physiological and the behavioral branch (from the metadata) each get their own early-fusion
MLP over their modalities and predict a distribution; the output is the convex mixture

    d_hat = alpha * softmax(f_phys(x_phys)) + (1 - alpha) * softmax(f_beh(x_beh)),
    alpha = sigmoid(theta),

with the scalar ``theta`` learned with the rest (``alpha = 0.5`` at the start). The KL uses the
mixture's log computed as a log-sum-exp of the branch log-probabilities, so it stays finite when a
branch puts almost no mass on an emotion.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.models.base import Batch, EmotionDistributionModule, adam, exponential_decay
from mpcl.models.mlp import EarlyFusionMLP
from mpcl.nn.masking import branch_presence, fill_missing


class LateFusionModule(EmotionDistributionModule):
    """Per-branch MLP heads and a learned mixture of their two distributions.

    Missing modalities (:mod:`mpcl.nn.masking`): a branch whose modalities are all missing in
    a window is skipped, the window's prediction is the other branch's distribution alone
    (``alpha`` becomes 1 or 0); a partly missing branch gets zero-fill (training-mean
    imputation) of its missing modalities.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI. Both
            ``physiological`` and ``behavioral`` must name at least one modality.
        hidden_dims: Widths of the hidden layers of each branch's MLP.
        dropout: Dropout after every hidden layer.
        initial_weight: Starting physiological weight ``alpha`` in ``(0, 1)``.
        optimizer: Callable building the optimizer.
        scheduler: Callable building an epoch-wise scheduler, or ``None``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        hidden_dims: list[int] | None = None,
        dropout: float = 0.3,
        initial_weight: float = 0.5,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__(metadata, optimizer=optimizer, scheduler=scheduler)
        self.branches = {
            "physiological": self.metadata.physiological,
            "behavioral": self.metadata.behavioral,
        }
        empty = [name for name, modalities in self.branches.items() if not modalities]
        if empty:
            raise ValueError(
                f"LateFusionModule: the data set's metadata has no {empty} modalities "
                f"(physiological={list(self.metadata.physiological)}, "
                f"behavioral={list(self.metadata.behavioral)}); late fusion needs both branches"
            )
        if not 0.0 < initial_weight < 1.0:
            raise ValueError(
                f"LateFusionModule: initial_weight must be in (0, 1), got {initial_weight}"
            )
        widths = hidden_dims if hidden_dims is not None else [256, 128]
        self.heads = nn.ModuleDict(
            {
                name: EarlyFusionMLP(
                    [self.metadata.feature_dim(m) for m in modalities],
                    self.num_emotions,
                    hidden_dims=widths,
                    dropout=dropout,
                )
                for name, modalities in self.branches.items()
            }
        )
        # theta = logit(alpha): the mixture weight lives on the whole real line.
        self.mixture_logit = nn.Parameter(torch.logit(torch.tensor(float(initial_weight))))

    @property
    def mixture_weight(self) -> Tensor:
        """``alpha = sigmoid(theta)``: the physiological branch's share, in ``[0, 1]``."""
        return torch.sigmoid(self.mixture_logit)

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The mixture ``[B, C]``; ``aux`` has its log, each branch's log-probs and ``alpha``."""
        batch = fill_missing(batch, [m for mods in self.branches.values() for m in mods])
        branch_log_probs = {
            name: torch.log_softmax(self.heads[name]([batch[m] for m in modalities]), dim=-1)
            for name, modalities in self.branches.items()
        }
        # log(alpha p + (1 - alpha) q) = logsumexp(log alpha + log p, log(1 - alpha) + log q)
        log_probs = torch.logaddexp(
            F.logsigmoid(self.mixture_logit) + branch_log_probs["physiological"],
            F.logsigmoid(-self.mixture_logit) + branch_log_probs["behavioral"],
        )
        log_probs = self._skip_missing_branches(batch, log_probs, branch_log_probs)
        aux = {
            "log_probs": log_probs,
            "mixture_weight": self.mixture_weight,
            **{f"log_probs_{name}": value for name, value in branch_log_probs.items()},
        }
        return log_probs.exp(), aux

    def _skip_missing_branches(
        self, batch: Batch, log_probs: Tensor, branch_log_probs: dict[str, Tensor]
    ) -> Tensor:
        """The mixture where both branches are there, else the present branch's distribution."""
        present = {
            name: branch_presence(batch, modalities, log_probs)
            for name, modalities in self.branches.items()
        }
        if all(p is None for p in present.values()):
            return log_probs
        rows, device = log_probs.shape[0], log_probs.device
        phys, beh = (
            torch.ones(rows, dtype=torch.bool, device=device) if p is None else p
            for p in (present["physiological"], present["behavioral"])
        )
        only_phys = (phys & ~beh).unsqueeze(-1)
        only_beh = (beh & ~phys).unsqueeze(-1)
        log_probs = torch.where(only_phys, branch_log_probs["physiological"], log_probs)
        return torch.where(only_beh, branch_log_probs["behavioral"], log_probs)

    def on_train_epoch_end(self) -> None:
        """Log ``alpha`` once per epoch, to follow which branch the mixture trusts."""
        super().on_train_epoch_end()
        self.log("train/mixture_weight", self.mixture_weight.detach())
