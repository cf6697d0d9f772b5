"""SA-BFGS: the maximum-entropy (softmax-linear) label-distribution model, fitted by L-BFGS.

Specialised-algorithm LDL (Geng, 2016):

    p(y_j | x) = exp(w_j . x + b_j) / sum_l exp(w_l . x + b_l)

on the concatenated standardised features, fitted on the *whole* training split by minimising

    J(W, b) = (1 / N) sum_i KL(d_i || p(. | x_i)) + (lambda / 2) ||W||_F^2

with L-BFGS (strong-Wolfe line search) and the analytic gradient

    dJ/dW = (1 / N) (P - D)^T X + lambda W,        dJ/db = (1 / N) sum_i (p_i - d_i),

where ``P`` and ``D`` stack the predicted and target distributions row-wise. ``J`` is convex in
``(W, b)``, so the zero start (uniform predictions) loses nothing. The fit runs once at the start
of ``mpcl fit``; the trainer's optimizer never touches the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.baselines.fitted import ClosedFormModule, check_modalities, concat_features
from mpcl.models.base import Batch


def sa_bfgs_objective(
    weight: Tensor, bias: Tensor, features: Tensor, target: Tensor, weight_decay: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """The SA-BFGS objective and its analytic gradient (no autograd).

    Args:
        weight: ``W`` ``[C, D]``.
        bias: ``b`` ``[C]``.
        features: ``X`` ``[N, D]``.
        target: ``D`` ``[N, C]``, rows summing to 1.
        weight_decay: ``lambda`` of the ``(lambda / 2) ||W||_F^2`` term (the bias is not decayed).

    Returns:
        ``J``, ``dJ/dW`` and ``dJ/db``.
    """
    log_p = torch.log_softmax(features @ weight.T + bias, dim=1)
    # KL(d || p) = sum_j d_j log d_j - sum_j d_j log p_j, with 0 log 0 = 0.
    entropy_term = torch.special.xlogy(target, target).sum()
    n = len(features)
    value = (entropy_term - (target * log_p).sum()) / n
    residual = (log_p.exp() - target) / n
    grad_weight = residual.T @ features
    grad_bias = residual.sum(dim=0)
    if weight_decay:
        value = value + 0.5 * weight_decay * weight.pow(2).sum()
        grad_weight = grad_weight + weight_decay * weight
    return value, grad_weight, grad_bias


@dataclass(frozen=True)
class FitReport:
    """How an L-BFGS fit went: objective before / after and the iterations used."""

    initial_objective: float
    final_objective: float
    iterations: int


def fit_sa_bfgs(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    target: Tensor,
    weight_decay: float = 0.0,
    max_iter: int = 500,
    tolerance_grad: float = 1e-6,
    history_size: int = 20,
) -> FitReport:
    """Minimise :func:`sa_bfgs_objective` in place over ``weight`` and ``bias`` with L-BFGS.

    ``torch.optim.LBFGS`` runs on the tensors' device; the closure fills ``.grad`` with the
    analytic gradient, so no autograd graph of the ``N x D`` features is ever built.

    Args:
        weight: Parameter ``[C, D]``, updated in place.
        bias: Parameter ``[C]``, updated in place.
        features: ``[N, D]``.
        target: ``[N, C]``.
        weight_decay: L2 coefficient on ``W``.
        max_iter: Maximum L-BFGS iterations.
        tolerance_grad: Stop when the largest gradient entry is below this.
        history_size: Number of curvature pairs L-BFGS keeps.

    Returns:
        The objective before and after, and the number of iterations.
    """
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 5 // 4,
        tolerance_grad=tolerance_grad,
        tolerance_change=1e-12,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        # LBFGS calls the closure with grad enabled; the gradient is analytic, so build no graph.
        with torch.no_grad():
            value, grad_w, grad_b = sa_bfgs_objective(weight, bias, features, target, weight_decay)
        weight.grad, bias.grad = grad_w, grad_b
        return value

    with torch.no_grad():
        initial = float(closure())
        optimizer.step(closure)
        final = float(closure())
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    weight.grad, bias.grad = None, None
    return FitReport(initial, final, iterations)


class SABFGSModule(ClosedFormModule):
    """SA-BFGS: softmax-linear maximum-entropy model fitted by full-batch L-BFGS on KL.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        weight_decay: ``lambda`` of the ``(lambda / 2) ||W||^2`` penalty.
        max_iter: Maximum L-BFGS iterations.
        tolerance_grad: L-BFGS stops when every gradient entry is below this.
        modalities: Modalities to concatenate (default: all of the metadata's branches).
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        weight_decay: float = 0.0,
        max_iter: int = 500,
        tolerance_grad: float = 1e-6,
        modalities: list[str] | None = None,
    ) -> None:
        super().__init__(metadata)
        if weight_decay < 0:
            raise ValueError(f"SABFGSModule: weight_decay must be >= 0, got {weight_decay}")
        if max_iter < 1:
            raise ValueError(f"SABFGSModule: max_iter must be >= 1, got {max_iter}")
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.tolerance_grad = tolerance_grad
        self.modalities = check_modalities(self.metadata, modalities, "SABFGSModule")
        width = sum(self.metadata.feature_dim(m) for m in self.modalities)
        self.weight = nn.Parameter(torch.zeros(self.num_emotions, width))
        self.bias = nn.Parameter(torch.zeros(self.num_emotions))
        self.register_buffer("fitted", torch.tensor(False))
        self.fit_report: FitReport | None = None

    @property
    def is_fitted(self) -> bool:
        """Whether the parameters come from a fit (this run's or a loaded checkpoint's)."""
        return bool(self.fitted)

    def fit_training_split(self, train: Mapping[str, Tensor], datamodule: Any) -> None:
        """Fit ``W`` and ``b`` from zero on every training row."""
        features = concat_features(train, self.modalities).float().to(self.device)
        target = train["target"].float().to(self.device)
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
        self.fit_report = fit_sa_bfgs(
            self.weight,
            self.bias,
            features,
            target,
            weight_decay=self.weight_decay,
            max_iter=self.max_iter,
            tolerance_grad=self.tolerance_grad,
        )
        self.fitted.fill_(True)
        report = self.fit_report
        rank_zero_info(
            f"SABFGSModule: L-BFGS on {len(features)} training rows, {report.iterations} "
            f"iterations, objective {report.initial_objective:.5f} -> {report.final_objective:.5f}"
        )

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """``softmax(W x + b)`` with ``aux["log_probs"]`` for a stable KL."""
        self.check_fitted()
        logits = concat_features(batch, self.modalities) @ self.weight.T + self.bias
        log_probs = torch.log_softmax(logits, dim=-1)
        return log_probs.exp(), {"logits": logits, "log_probs": log_probs}
