"""Associative-memory primitives: modern-Hopfield retrieval and multi-scale token pooling.

See docs/model.md, section 'Multi-scale associative memory fusion'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class HopfieldRetrieval(nn.Module):
    r"""Modern-Hopfield retrieval of stored patterns by query states (one update step).

    .. math::
        \mathrm{retrieve}(Q, X) = \mathrm{softmax}\big(\beta\, (Q W_q)(X W_k)^\top + M\big)\,
        (X W_v)

    with an optional additive logit bias ``M`` (priors). ``beta`` is log-parameterised so that it
    stays positive; several inverse temperatures can share the projections (one per memory
    scale). The key projection has no bias: a key bias adds the same value to every logit of a
    query, which the softmax ignores, so it would never learn.

    Patterns may be shared by the whole batch (``[P, D]``) or per sample (``[B, P, D]``); the
    matrix products broadcast either way.

    Args:
        dim: State and pattern size D.
        num_betas: Number of inverse temperatures.
        beta_init: Initial ``beta``; defaults to ``1 / sqrt(D)`` (scaled dot-product attention).
    """

    def __init__(self, dim: int, num_betas: int = 1, beta_init: float | None = None) -> None:
        super().__init__()
        beta = dim**-0.5 if beta_init is None else beta_init
        if beta <= 0:
            raise ValueError(f"HopfieldRetrieval: beta_init must be positive, got {beta}")
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.log_beta = nn.Parameter(torch.full((num_betas,), math.log(beta)))

    @property
    def beta(self) -> Tensor:
        """The inverse temperatures, shape ``[num_betas]``."""
        return self.log_beta.exp()

    def scores(
        self, queries: Tensor, keys: Tensor, index: int = 0, bias: Tensor | None = None
    ) -> Tensor:
        """Retrieval logits ``beta_index * queries keys^T (+ bias)`` of projected states.

        Args:
            queries: Projected queries ``[..., Q, D]`` (``self.query`` applied).
            keys: Projected keys ``[..., P, D]`` (``self.key`` applied).
            index: Which inverse temperature to use.
            bias: Additive logits broadcastable to ``[..., Q, P]``.

        Returns:
            Logits ``[..., Q, P]``.
        """
        logits = self.beta[index] * torch.matmul(queries, keys.transpose(-1, -2))
        return logits if bias is None else logits + bias

    def attend(
        self,
        queries: Tensor,
        keys: Tensor,
        values: Tensor,
        index: int = 0,
        bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Retrieval from already projected states (to reuse projections across memories).

        Returns:
            The retrieved states ``[..., Q, D]`` and the attention ``[..., Q, P]``.
        """
        attention = self.scores(queries, keys, index, bias).softmax(dim=-1)
        return torch.matmul(attention, values), attention

    def forward(
        self, queries: Tensor, patterns: Tensor, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``retrieve(queries, patterns)`` with the first inverse temperature.

        Args:
            queries: Query states ``[..., Q, D]``.
            patterns: Stored patterns ``[..., P, D]``.
            bias: Additive logits broadcastable to ``[..., Q, P]``.

        Returns:
            The retrieved states ``[..., Q, D]`` and the attention ``[..., Q, P]``.
        """
        return self.attend(self.query(queries), self.key(patterns), self.value(patterns), 0, bias)


def pooling_matrix(token_counts: Sequence[int], scale: int) -> Tensor:
    """Average-pooling with window ``scale`` of each modality's tokens, as one matrix.

    For modalities with ``T_1, T_2, ...`` tokens concatenated along the token axis, row ``j`` of
    the result averages one window of at most ``scale`` consecutive tokens of one modality
    (windows never cross modalities; a last, shorter window averages what is left). Pooling every
    modality at once is then one matrix product ``pooled = P @ tokens``.

    Args:
        token_counts: Tokens per modality, in concatenation order.
        scale: Window size ``s >= 1``; ``s = 1`` is the identity.

    Returns:
        ``P`` of shape ``[sum_m ceil(T_m / s), sum_m T_m]``; every row sums to 1.
    """
    if scale < 1:
        raise ValueError(f"pooling_matrix: scale must be a positive integer, got {scale}")
    blocks = []
    for count in token_counts:
        token = torch.arange(count)
        window = token // scale
        sizes = torch.bincount(window).float()
        block = torch.zeros(len(sizes), count)
        block[window, token] = 1.0 / sizes[window]
        blocks.append(block)
    # Block-diagonal: a window never mixes two modalities.
    return torch.block_diag(*blocks)
