"""Cross-attention fusion: each branch's tokens attend to the other branch's tokens.

Pipeline:

1. every modality becomes tokens (:class:`~mpcl.nn.tokenizers.ModalityTokenizers`: one per EEG
   channel, a few per flat vector, one per face group, each with a modality embedding);
2. the physiological tokens ``P`` and the behavioral tokens ``Q`` are updated by ``L``
   bidirectional pre-norm cross-attention blocks,
   ``P <- P + MHA(LN(P), LN(Q), LN(Q))``, ``Q <- Q + MHA(LN(Q), LN(P), LN(P))`` (both from the
   previous ``P``, ``Q``), each followed by a residual feed-forward layer;
3. each branch is mean-pooled over its tokens, the two pooled vectors are concatenated and an
   MLP head gives the logits.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.models.base import Batch, EmotionDistributionModule, adam, exponential_decay
from mpcl.nn.masking import fill_missing, presence_matrix
from mpcl.nn.tokenizers import ModalityTokenizers


class CrossAttentionBlock(nn.Module):
    """One bidirectional cross-attention block between two token sets.

    Args:
        dim: Token size D.
        num_heads: Attention heads (must divide D).
        dropout: Dropout on attention weights and residual branches.
        ffn_mult: Hidden width of the feed-forward layer as a multiple of D.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, ffn_mult: int = 2) -> None:
        super().__init__()
        self.norm_query = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.norm_context = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.attention = nn.ModuleList(
            [
                nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
                for _ in range(2)
            ]
        )
        self.feed_forward = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LayerNorm(dim),
                    nn.Linear(dim, ffn_mult * dim),
                    nn.GELU(),
                    nn.Dropout(dropout),
                    nn.Linear(ffn_mult * dim, dim),
                )
                for _ in range(2)
            ]
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        first: Tensor,
        second: Tensor,
        first_mask: Tensor | None = None,
        second_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Both token sets updated, and the attention of ``first`` over ``second``.

        Args:
            first: ``[B, T1, D]``.
            second: ``[B, T2, D]``.
            first_mask: Which tokens of ``first`` are present ``[B, T1]`` (``None``: all); a
                missing token is never attended to. A window whose context has no present token
                receives no cross-attention update.
            second_mask: The same for ``second``.

        Returns:
            The updated ``first`` and ``second`` and the head-averaged attention ``[B, T1, T2]``.
        """
        updated, weights = [], None
        pairs = ((first, second, second_mask), (second, first, first_mask))
        for i, (query, context, context_mask) in enumerate(pairs):
            q, kv = self.norm_query[i](query), self.norm_context[i](context)
            padding, has_context = None, None
            if context_mask is not None:
                has_context = context_mask.any(dim=1)
                # An all-missing context would give softmax over nothing (NaN): attend to every
                # token there instead and discard the result below.
                padding = ~(context_mask | ~has_context.unsqueeze(1))
            attended, attn = self.attention[i](
                q, kv, kv, key_padding_mask=padding, need_weights=i == 0
            )
            if has_context is not None:
                attended = attended * has_context.view(-1, 1, 1).to(attended.dtype)
            if i == 0:
                weights = attn
            x = query + self.dropout(attended)
            updated.append(x + self.dropout(self.feed_forward[i](x)))
        return updated[0], updated[1], weights


class CrossAttentionFusionModule(EmotionDistributionModule):
    """Modality tokens, cross-attention between the two branches, pooled MLP head.

    Missing modalities (:mod:`mpcl.nn.masking`): their tokens are key-padding-masked in every
    cross-attention and left out of the branch's mean pooling; a branch with no present token in
    a window contributes a zero vector to the head and no cross-attention update to the other
    branch (skipping the branch).

    Args:
        metadata: Data set description; linked from the datamodule by the CLI. Both branches
            must name at least one modality.
        dim: Token size D.
        num_heads: Attention heads.
        num_layers: Number ``L`` of cross-attention blocks.
        dropout: Dropout on tokens, attention and the head.
        token_groups: Grouped-token layout per modality (e.g. ``{face: 3}``), see
            :class:`~mpcl.nn.tokenizers.ModalityTokenizers`.
        tokens_per_modality: Flat-token counts per modality.
        optimizer: Callable building the optimizer.
        scheduler: Callable building an epoch-wise scheduler, or ``None``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.2,
        token_groups: dict[str, int] | None = None,
        tokens_per_modality: dict[str, int] | None = None,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__(metadata, optimizer=optimizer, scheduler=scheduler)
        physiological, behavioral = self.metadata.physiological, self.metadata.behavioral
        if not physiological or not behavioral:
            raise ValueError(
                "CrossAttentionFusionModule: the data set's metadata needs modalities in both "
                f"branches, got physiological={list(physiological)}, behavioral={list(behavioral)}"
            )
        if dim % num_heads:
            raise ValueError(
                f"CrossAttentionFusionModule: num_heads={num_heads} must divide dim={dim}"
            )
        if num_layers < 1:
            raise ValueError(
                f"CrossAttentionFusionModule: num_layers must be >= 1, got {num_layers}"
            )
        self.tokenizers = ModalityTokenizers(
            self.metadata,
            dim,
            tokens_per_modality=tokens_per_modality,
            token_groups=token_groups,
            dropout=dropout,
        )
        self.blocks = nn.ModuleList(
            [CrossAttentionBlock(dim, num_heads, dropout) for _ in range(num_layers)]
        )
        self.head = nn.Sequential(
            nn.LayerNorm(2 * dim),
            nn.Linear(2 * dim, dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim, self.num_emotions),
        )

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Distributions ``[B, C]`` and ``aux``.

        ``aux`` holds ``logits``, ``log_probs`` and ``attention``: the last block's
        physiological-to-behavioral attention ``[B, T_phys, T_beh]``.
        """
        batch = fill_missing(batch, self.metadata.modalities)
        tokens = self.tokenizers(batch)
        first = torch.cat([tokens[m] for m in self.metadata.physiological], dim=1)
        second = torch.cat([tokens[m] for m in self.metadata.behavioral], dim=1)
        first_mask = self._token_mask(batch, self.metadata.physiological, first)
        second_mask = self._token_mask(batch, self.metadata.behavioral, second)
        attention = None
        for block in self.blocks:
            first, second, attention = block(first, second, first_mask, second_mask)
        pooled = torch.cat(
            [_masked_mean(first, first_mask), _masked_mean(second, second_mask)], dim=-1
        )
        logits = self.head(pooled)
        log_probs = torch.log_softmax(logits, dim=-1)
        return log_probs.exp(), {
            "logits": logits,
            "log_probs": log_probs,
            "attention": attention,
        }

    def _token_mask(
        self, batch: Batch, modalities: tuple[str, ...], tokens: Tensor
    ) -> Tensor | None:
        """Presence of each token ``[B, T]`` (a modality's presence repeated over its tokens)."""
        present = presence_matrix(batch, modalities, tokens)
        if present is None:
            return None
        counts = torch.tensor(
            [self.tokenizers.num_tokens(m) for m in modalities], device=tokens.device
        )
        return present.repeat_interleave(counts, dim=1)


def _masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of the present tokens ``[B, D]``; zeros where a window has none."""
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
