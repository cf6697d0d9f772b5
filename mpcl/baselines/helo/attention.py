"""Attention blocks of HeLo: multi-head attention with DropKey and an additive logit bias.

DropKey (Li et al., CVPR 2023) regularises attention by dropping *keys* before the softmax
instead of dropping attention weights after it: each logit is masked out with probability ``p``
and the softmax renormalises over the keys that are left.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def dropkey_mask(logits: Tensor, ratio: float) -> Tensor:
    """Boolean mask of the logits that DropKey drops (``True`` = dropped).

    Each logit is dropped independently with probability ``ratio``. A query row whose keys would
    all be dropped keeps them all instead: with 18 keys and ratio 0.5 that happens to about 1 row
    in 2^18, i.e. a few times per epoch at batch 128, and would otherwise turn the row into NaN.

    Args:
        logits: Attention logits ``[..., Nq, Nk]``.
        ratio: Drop probability in ``[0, 1)``.

    Returns:
        The mask, same shape as ``logits``.
    """
    drop = torch.rand_like(logits) < ratio
    return drop & ~drop.all(dim=-1, keepdim=True)


class DropKeyAttention(nn.Module):
    r"""Multi-head scaled dot-product attention with DropKey and an optional logit bias.

    .. math::
        \mathrm{head}_h = \mathrm{softmax}\!\Big(\frac{(Q W^q_h)(K W^k_h)^\top}{\sqrt{D/H}}
            + \mathrm{bias} + M\Big)\, K W^v_h, \qquad
        \mathrm{out} = [\mathrm{head}_1, \dots, \mathrm{head}_H]\, W^o

    where ``M`` is ``-inf`` at the logits DropKey drops and 0 elsewhere. Every projection has a
    bias (``4 (D^2 + D)`` parameters).

    Args:
        dim: Model size D.
        num_heads: Number H of heads; must divide D.
        dropkey: DropKey ratio (0 disables it); training only.
    """

    def __init__(self, dim: int, num_heads: int = 1, dropkey: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"DropKeyAttention: num_heads={num_heads} must divide dim={dim}")
        if not 0.0 <= dropkey < 1.0:
            raise ValueError(f"DropKeyAttention: dropkey must be in [0, 1), got {dropkey}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropkey = dropkey
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, query: Tensor, key_value: Tensor, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` ``[B, Nq, D]`` over ``key_value`` ``[B, Nk, D]``.

        Args:
            query: Query tokens.
            key_value: Key (and value) tokens.
            bias: Additive logit bias broadcastable to ``[B, H, Nq, Nk]`` (e.g. ``[Nq, Nk]``).

        Returns:
            The output tokens ``[B, Nq, D]`` and the attention weights ``[B, H, Nq, Nk]``.
        """
        q = self._split(self.query(query))
        k = self._split(self.key(key_value))
        v = self._split(self.value(key_value))
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if bias is not None:
            logits = logits + bias
        if self.dropkey > 0 and self.training:
            logits = logits.masked_fill(dropkey_mask(logits, self.dropkey), float("-inf"))
        weights = logits.softmax(dim=-1)
        heads = (weights @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        return self.out(heads), weights


class CrossAttentionBlock(nn.Module):
    """Post-LN residual cross-attention: ``LayerNorm(Q + Attention(Q, KV, bias))``.

    Args:
        dim: Model size D.
        num_heads: Number of heads.
        dropkey: DropKey ratio.
    """

    def __init__(self, dim: int, num_heads: int, dropkey: float = 0.0) -> None:
        super().__init__()
        self.attention = DropKeyAttention(dim, num_heads, dropkey)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, query: Tensor, key_value: Tensor, bias: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Updated query tokens ``[B, Nq, D]`` and the attention weights ``[B, H, Nq, Nk]``."""
        attended, weights = self.attention(query, key_value, bias)
        return self.norm(query + attended), weights
