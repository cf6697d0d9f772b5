"""Fusion of one branch's modality tokens: multi-scale associative memory (MSAM) or concatenation.

All fusion modules share one interface: ``forward(tokens) -> (fused, gate)`` where ``tokens`` is
the list of the branch's modality tokens ``[B, T_m, D]`` (the first is the anchor) and ``gate`` is
the per-token weighting of the memory scales ``[B, T_anchor, S]`` (``None`` where there is none).

See docs/model.md, section 'Multi-scale associative memory fusion'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from mpcl.nn.memory import HopfieldRetrieval, pooling_matrix

#: Hidden size of the feed-forward blocks, as a multiple of D.
FFN_RATIO = 2

FusionAnchor = Literal["first", "all"]


class FeedForward(nn.Module):
    """Position-wise ``Linear(D, 2D) -> GELU -> Dropout -> Linear(2D, D)``.

    Args:
        dim: Token size D.
        dropout: Dropout after the activation.
    """

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, FFN_RATIO * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(FFN_RATIO * dim, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[..., D] -> [..., D]``."""
        return self.net(x)


def scale_mask(segments: Sequence[int], memory_slots: int) -> Tensor:
    """Additive attention mask ``[S, P]`` that restricts scale ``s`` to its own patterns.

    The pattern axis holds every scale's pooled patterns (``segments[s]`` of them, scale after
    scale), then ``memory_slots`` slots per scale in the same order. Entry ``[s, p]`` is 0 when
    pattern ``p`` belongs to scale ``s`` and ``-inf`` otherwise.

    Args:
        segments: Pooled patterns per scale.
        memory_slots: Learned memory slots per scale.

    Returns:
        The mask, float32.
    """
    owners = [s for s, size in enumerate(segments) for _ in range(size)]
    owners += [s for s in range(len(segments)) for _ in range(memory_slots)]
    owner = torch.tensor(owners)
    mask = torch.zeros(len(segments), len(owners))
    return mask.masked_fill(owner[None, :] != torch.arange(len(segments))[:, None], float("-inf"))


class MultiScaleAssociativeFusion(nn.Module):
    r"""Multi-scale associative memory fusion (MSAM) of one branch.

    The anchor tokens ``H_a`` query, at every scale ``s``, the stored patterns ``X_s``
    average-pooled with window ``s`` (per modality), followed by ``M`` learned memory slots of
    that scale (long-term associations). With ``anchor="first"`` the anchor is the first
    modality and the patterns are the other modalities' tokens (with a single modality the
    anchor stores its own tokens: auto-associative memory); the output keeps only the anchor's
    tokens, so the other modalities reach it through retrieval alone. With ``anchor="all"``
    every modality's tokens are queries and the patterns are all tokens: each modality's tokens
    survive through the residual and recall the others (hetero- and auto-associative at once).

    .. math::
        R_s = \mathrm{retrieve}_{\beta_s}(H_a, [X_s; S_s]), \quad
        g = \mathrm{softmax}(H_a W_g), \quad
        H = \mathrm{LN}(H_a + \textstyle\sum_s g_s R_s), \quad
        H_{out} = \mathrm{LN}(H + \mathrm{FFN}(H))

    The Hopfield projections are shared by the scales (a pattern is the same kind of object at
    every scale), each scale has its own inverse temperature ``beta_s``. With one scale there is
    no gate.

    Args:
        token_counts: Tokens per modality of the branch, anchor first.
        dim: Token size D.
        scales: Pooling windows, e.g. ``(1, 2, 4)``.
        memory_slots: Learned memory slots per scale (0 for none).
        dropout: Dropout on the retrieved states and in the feed-forward block.
        anchor: ``"first"`` (the first modality queries the others) or ``"all"``.
    """

    def __init__(
        self,
        token_counts: Sequence[int],
        dim: int,
        scales: Sequence[int] = (1, 2, 4),
        memory_slots: int = 4,
        dropout: float = 0.0,
        anchor: FusionAnchor = "first",
    ) -> None:
        super().__init__()
        if anchor not in ("first", "all"):
            raise ValueError(
                f"MultiScaleAssociativeFusion: anchor must be 'first' or 'all', got {anchor!r}"
            )
        self.anchor = anchor
        scales = [int(s) for s in scales]
        if not scales or any(s < 1 for s in scales) or len(set(scales)) != len(scales):
            raise ValueError(
                f"MultiScaleAssociativeFusion: scales must be distinct positive integers, "
                f"got {scales}"
            )
        if memory_slots < 0:
            raise ValueError(f"MultiScaleAssociativeFusion: memory_slots < 0: {memory_slots}")
        if not token_counts:
            raise ValueError("MultiScaleAssociativeFusion: a branch needs at least one modality")
        self.scales = tuple(scales)
        if anchor == "all":
            stored = list(token_counts)
        else:
            stored = list(token_counts[1:]) or [token_counts[0]]
        matrices = [pooling_matrix(stored, s) for s in scales]
        # All scales pooled by one matrix product; segment i of the rows belongs to scale i.
        self.register_buffer("pool", torch.cat(matrices), persistent=False)
        self.segments = [int(m.shape[0]) for m in matrices]
        # Which stored modality each pooled pattern comes from (pooling never mixes modalities).
        owner = [i for s in scales for i, count in enumerate(stored) for _ in range(-(-count // s))]
        self.register_buffer("pattern_owner", torch.tensor(owner), persistent=False)
        self.num_slot_patterns = len(scales) * memory_slots
        # Slots live in token space; tokens of standardised features have entries of std ~0.5.
        self.slots = (
            nn.Parameter(torch.randn(len(scales), memory_slots, dim) * 0.5)
            if memory_slots
            else None
        )
        self.register_buffer(
            "scale_mask", scale_mask(self.segments, memory_slots), persistent=False
        )
        self.hopfield = HopfieldRetrieval(dim, num_betas=len(scales))
        self.gate = nn.Linear(dim, len(scales)) if len(scales) > 1 else None
        if self.gate is not None:
            # Start from an even mixture of the scales.
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dropout)
        self.norm2 = nn.LayerNorm(dim)

    def pattern_bias(self, present: Sequence[Tensor | None] | None) -> Tensor | None:
        """Additive logits ``[B, 1, 1, P]``: ``-inf`` on the patterns of missing modalities.

        Missing tokens take no part in the memory: their pooled patterns get no attention (the
        learned slots always can). A window whose stored modalities are all missing and that has
        no slots attends to every pattern instead (a softmax over nothing is undefined); its
        patterns then hold only zero-filled constants, and the branch is imputed downstream.

        Args:
            present: Per modality of the branch (anchor first), presence ``[B]`` or ``None``.

        Returns:
            The bias, or ``None`` when nothing is missing.
        """
        if present is None or all(p is None for p in present):
            return None
        stored = list(present) if self.anchor == "all" else (list(present[1:]) or [present[0]])
        if all(p is None for p in stored):
            return None
        rows = next(p for p in stored if p is not None)
        columns = [torch.ones_like(rows) if p is None else p for p in stored]
        stored_present = torch.stack(columns, dim=1)
        pattern_present = stored_present[:, self.pattern_owner]
        if self.num_slot_patterns == 0:
            nothing = ~stored_present.any(dim=1, keepdim=True)
            pattern_present = pattern_present | nothing
        else:
            slots = torch.ones(
                len(rows), self.num_slot_patterns, dtype=torch.bool, device=rows.device
            )
            pattern_present = torch.cat([pattern_present, slots], dim=1)
        bias = torch.zeros(pattern_present.shape, device=rows.device)
        bias = bias.masked_fill(~pattern_present, float("-inf"))
        return bias[:, None, None, :]

    def forward(
        self, tokens: Sequence[Tensor], present: Sequence[Tensor | None] | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Fuse a branch.

        Args:
            tokens: The branch's modality tokens ``[B, T_m, D]``, anchor first.
            present: Per modality, presence ``[B]`` (or ``None``: present); see
                :meth:`pattern_bias`.

        Returns:
            The fused tokens ``[B, T_anchor, D]`` and the scale gate ``[B, T_anchor, S]`` (or
            ``None`` with a single scale); with ``anchor="all"``, ``T_anchor = sum_m T_m``.
        """
        if self.anchor == "all":
            anchor = stored = torch.cat(list(tokens), dim=1)
        else:
            anchor = tokens[0]
            stored = torch.cat(list(tokens[1:]), dim=1) if len(tokens) > 1 else anchor
        memory = torch.matmul(self.pool, stored)
        if self.slots is not None:
            # The shared slots are projected with every sample's patterns: projecting them once
            # and appending the projections costs two more linear calls and a concatenation, which
            # measured slower at batch 1 (~+0.06 ms) and no faster at batch 128.
            slots = self.slots.flatten(0, 1)
            memory = torch.cat([memory, slots.expand(anchor.shape[0], *slots.shape)], dim=1)
        keys, values = self.hopfield.key(memory), self.hopfield.value(memory)
        # Every scale in one pass: the scores against all patterns [B, T, P] are scaled by each
        # scale's beta and masked to that scale's patterns and slots ([B, T, S, P]), so one
        # softmax gives every scale's attention (a masked pattern gets exactly 0).
        scores = torch.matmul(self.hopfield.query(anchor), keys.transpose(-1, -2))
        beta = self.hopfield.beta.unsqueeze(-1)
        logits = scores.unsqueeze(-2) * beta + self.scale_mask
        bias = self.pattern_bias(present)
        if bias is not None:
            logits = logits + bias.to(logits.dtype)
        attention = logits.softmax(dim=-1)
        if self.gate is None:
            gate = None
            weights = attention.squeeze(-2)
        else:
            gate = self.gate(anchor).softmax(dim=-1)
            # sum_s g_s (alpha_s V) = (sum_s g_s alpha_s) V: the scales mix before the product.
            weights = torch.matmul(gate.unsqueeze(-2), attention).squeeze(-2)
        mixture = torch.matmul(weights, values)
        hidden = self.norm1(anchor + self.dropout(mixture))
        return self.norm2(hidden + self.dropout(self.ffn(hidden))), gate


class ConcatFusion(nn.Module):
    """Fusion without memory (the ``concat`` ablation).

    ``H = LN(cat_m H_m)``, then ``H_out = LN(H + FFN(H))``.

    Args:
        dim: Token size D.
        dropout: Dropout in the feed-forward block.
    """

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)

    def forward(
        self, tokens: Sequence[Tensor], present: Sequence[Tensor | None] | None = None
    ) -> tuple[Tensor, None]:
        """Concatenated tokens ``[B, sum_m T_m, D]`` and no gate.

        Position-wise only, so a missing modality's tokens never reach the others' (``present``
        is accepted for the common interface; the prototype readout leaves them out).
        """
        hidden = self.norm1(torch.cat(list(tokens), dim=1))
        return self.norm2(hidden + self.dropout(self.ffn(hidden))), None


class TokenNorm(nn.Module):
    """A branch of a single token has nothing to associate: it is only layer-normalised.

    Args:
        dim: Token size D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, tokens: Sequence[Tensor], present: Sequence[Tensor | None] | None = None
    ) -> tuple[Tensor, None]:
        """The normalised token ``[B, 1, D]`` and no gate (``present``: common interface)."""
        return self.norm(torch.cat(list(tokens), dim=1)), None
