"""HeLo's heterogeneity mining: a Gromov-Wasserstein plan between the two branches' tokens.

The two branches live in different feature spaces, so their tokens are matched by the *structure*
they induce (intra-branch cosine distances) rather than by a cross-branch cost: the
Gromov-Wasserstein (GW) problem with the square loss and uniform marginals, solved by the usual
sequence of linearised problems, each one by the inexact proximal point method (IPOT, Xie et al.,
UAI 2019). Everything is batched over the samples with tensor operations and runs without
gradient: the plan is a constant for back-propagation, as in the published model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

TransportKind = Literal["barycentric", "plan"]
ThresholdScope = Literal["sample", "batch"]


def thresholded_cosine_cost(
    tokens: Tensor, threshold: float = 0.1, scope: ThresholdScope = "sample"
) -> Tensor:
    r"""Intra-set cosine distances, shifted down by a threshold and clipped at 0.

    .. math::
        c_{ij} = 1 - \cos(x_i, x_j), \qquad
        \tau = \min c + t\,(\max c - \min c), \qquad C_{ij} = \max(c_{ij} - \tau, 0)

    With ``scope="sample"`` (default) the minimum and maximum are taken per sample, so a
    sample's cost never depends on the other samples of its batch. ``scope="batch"`` takes them
    over the whole batch, as the released code does (kaio-99/HeLo at 08dad27,
    ``models/OT_torch_.py`` lines 163-167, ``cos_dis.min()`` / ``.max()`` of the batch tensor).

    Args:
        tokens: Token sets ``[B, N, D]``.
        threshold: The fraction ``t`` of the range.
        scope: ``sample`` or ``batch``: where the minimum and maximum are taken.

    Returns:
        Costs ``[B, N, N]``.
    """
    unit = nn.functional.normalize(tokens, dim=-1)
    cost = 1.0 - unit @ unit.transpose(1, 2)
    if scope not in ("sample", "batch"):
        raise ValueError(
            f"thresholded_cosine_cost: scope must be 'sample' or 'batch', got {scope!r}"
        )
    dims = (1, 2) if scope == "sample" else (0, 1, 2)
    low = cost.amin(dim=dims, keepdim=True)
    high = cost.amax(dim=dims, keepdim=True)
    return (cost - (low + threshold * (high - low))).clamp_min(0.0)


def ipot(cost: Tensor, beta: float = 0.1, iterations: int = 20) -> Tensor:
    r"""Optimal transport plans with uniform marginals by the inexact proximal point method.

    With ``G = exp(-C / beta)``, ``T^{(0)} = 1 1^T``, ``b = 1_m / m`` and one Sinkhorn sweep per
    proximal step:

    .. math::
        Q = G \odot T^{(t)}, \quad a = \frac{1_n / n}{Q b}, \quad b = \frac{1_m / m}{Q^\top a},
        \quad T^{(t+1)} = \mathrm{diag}(a)\, Q\, \mathrm{diag}(b)

    ``G`` is computed from ``C`` minus its row minima: a row scaling of ``G`` is absorbed by ``a``,
    so the iterates are unchanged, and the largest entry of every row of ``G`` is 1. With costs in
    ``[0, 4]`` (the linearised GW costs of cosine distances are averages of squared differences
    of numbers in ``[0, 2]``) and ``beta >= 0.1`` no row underflows in float32; the denominators
    are clamped at the smallest normal float all the same. After the last sweep the
    column marginals are exactly ``1/m``; the row marginals converge to ``1/n``.

    Args:
        cost: Cost matrices ``[B, n, m]``.
        beta: Proximal step size (the entropic strength of each step).
        iterations: Number of proximal steps.

    Returns:
        Transport plans ``[B, n, m]`` (each sums to 1).
    """
    _, n, m = cost.shape
    tiny = torch.finfo(cost.dtype).tiny
    kernel = torch.exp((cost.amin(dim=2, keepdim=True) - cost) / beta)
    plan = torch.ones_like(cost)
    col = cost.new_full((cost.shape[0], m, 1), 1.0 / m)
    for _ in range(iterations):
        q = kernel * plan
        row = (1.0 / n) / (q @ col).clamp_min(tiny)
        col = (1.0 / m) / (q.transpose(1, 2) @ row).clamp_min(tiny)
        plan = row * q * col.transpose(1, 2)
    return plan


def gromov_wasserstein_plan(
    cost_source: Tensor,
    cost_target: Tensor,
    outer_iterations: int = 5,
    inner_iterations: int = 20,
    beta: float = 0.1,
) -> Tensor:
    r"""Gromov-Wasserstein plans (square loss, uniform marginals ``p``, ``q``), batched.

    Starting from ``T = p q^T``, each outer step solves the linearised problem with cost

    .. math::
        L(T) = (C_s^{\odot 2} p) 1_m^\top + 1_n (C_t^{\odot 2} q)^\top - 2\, C_s T C_t^\top

    by :func:`ipot`. Runs without gradient.

    Args:
        cost_source: Intra-set costs of the source tokens ``[B, n, n]`` (symmetric).
        cost_target: Intra-set costs of the target tokens ``[B, m, m]`` (symmetric).
        outer_iterations: Linearisation steps (5 published).
        inner_iterations: IPOT steps per linearisation (20 published).
        beta: IPOT step size (0.1 published).

    Returns:
        Plans ``[B, n, m]`` with row sums ``1/n`` and column sums ``1/m``.
    """
    with torch.no_grad():
        n, m = cost_source.shape[-1], cost_target.shape[-1]
        constant = cost_source.square().mean(dim=2, keepdim=True) + cost_target.square().mean(
            dim=2
        ).unsqueeze(1)
        plan = cost_source.new_full((cost_source.shape[0], n, m), 1.0 / (n * m))
        for _ in range(outer_iterations):
            linear = constant - 2.0 * cost_source @ plan @ cost_target.transpose(1, 2)
            plan = ipot(linear, beta, inner_iterations)
        return plan


class HeterogeneityMining(nn.Module):
    """Align the physiological tokens to the behavioral ones by a Gromov-Wasserstein plan.

    The plan ``T`` (``[B, Np, Nb]``, no gradient) couples physiological (rows) and behavioral
    (columns) tokens through their thresholded cosine-distance structures. The physiological
    tokens ``H_P`` are then transported:

    * ``barycentric`` (default): ``Nb T^T H_P``, ``[B, Nb, D]``: each behavioral position receives
      the convex combination of physiological tokens that the plan sends to it (``Nb T^T`` is
      row-stochastic). Works for any ``Np``, ``Nb``.
    * ``plan``: ``T H_P`` exactly as the reference writes it, which needs ``Np == Nb`` and scales
      the tokens by ``1/Np``.

    Gradients flow into ``H_P`` through the product only.

    Args:
        threshold: Cost threshold fraction (0.1 published).
        outer_iterations: GW linearisation steps (5 published).
        inner_iterations: IPOT steps per linearisation (20 published).
        beta: IPOT step size (0.1 published).
        transport: ``barycentric`` or ``plan``.
        threshold_scope: ``sample`` (default) or ``batch`` (the reference's; see
            :func:`thresholded_cosine_cost`).
    """

    def __init__(
        self,
        threshold: float = 0.1,
        outer_iterations: int = 5,
        inner_iterations: int = 20,
        beta: float = 0.1,
        transport: TransportKind = "barycentric",
        threshold_scope: ThresholdScope = "sample",
    ) -> None:
        super().__init__()
        if transport not in ("barycentric", "plan"):
            raise ValueError(
                f"HeterogeneityMining: transport must be 'barycentric' or 'plan', got {transport!r}"
            )
        self.threshold = threshold
        self.outer_iterations = outer_iterations
        self.inner_iterations = inner_iterations
        self.beta = beta
        self.transport = transport
        self.threshold_scope = threshold_scope

    def plan(self, physiological: Tensor, behavioral: Tensor) -> Tensor:
        """The GW plan ``[B, Np, Nb]`` between the two token sets (no gradient)."""
        with torch.no_grad():
            scope = self.threshold_scope
            cost_p = thresholded_cosine_cost(physiological.detach().float(), self.threshold, scope)
            cost_b = thresholded_cosine_cost(behavioral.detach().float(), self.threshold, scope)
            plan = gromov_wasserstein_plan(
                cost_p, cost_b, self.outer_iterations, self.inner_iterations, self.beta
            )
        return plan.to(physiological.dtype)

    def forward(self, physiological: Tensor, behavioral: Tensor) -> tuple[Tensor, Tensor]:
        """Transported physiological tokens and the plan.

        Args:
            physiological: Tokens ``H_P`` ``[B, Np, D]``.
            behavioral: Tokens ``H_B`` ``[B, Nb, D]``.

        Returns:
            The transported tokens (``[B, Nb, D]``) and the plan ``[B, Np, Nb]``.
        """
        plan = self.plan(physiological, behavioral)
        if self.transport == "plan":
            if plan.shape[1] != plan.shape[2]:
                raise ValueError(
                    "HeterogeneityMining: transport='plan' needs as many physiological as "
                    f"behavioral tokens, got {plan.shape[1]} and {plan.shape[2]}"
                )
            return plan @ physiological, plan
        return plan.shape[2] * plan.transpose(1, 2) @ physiological, plan
