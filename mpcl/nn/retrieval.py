"""Memory retrieval of emotion co-occurrence: branch gate, Hopfield retrieval, valence prior, loss.

Emotion queries ``E`` ``[B, C, D]`` (the gated mix of both branches' emotion representations)
retrieve from a semantic memory that holds every prototype of both banks. Summing the retrieval
attention by the emotion of each retrieved pattern yields a co-occurrence matrix ``A``
``[B, C, C]``: row ``c`` says which emotions emotion ``c`` recalls.

See docs/model.md, section 'Co-occurrence retrieval'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpcl.nn.memory import HopfieldRetrieval


class BranchGate(nn.Module):
    r"""Gated mix of the two branches' emotion representations.

    ``E = g * Z_P + (1 - g) * Z_B`` with ``g = sigmoid([Z_P, Z_B] W + b)`` per emotion and feature.

    Args:
        dim: D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, physiological: Tensor, behavioral: Tensor) -> tuple[Tensor, Tensor]:
        """The gated emotion queries ``[B, C, D]`` and the gate ``g`` ``[B, C, D]``."""
        gate = torch.sigmoid(self.proj(torch.cat([physiological, behavioral], dim=-1)))
        return gate * physiological + (1.0 - gate) * behavioral, gate


@dataclass
class RetrievalOutput:
    """Result of the co-occurrence stage.

    Attributes:
        emotions: ``E'`` ``[B, C, D]``.
        cooccurrence: ``A`` ``[B, C, C]`` (row-stochastic), or ``None`` without retrieval.
        log_cooccurrence: ``log A``, computed stably, or ``None``.
    """

    emotions: Tensor
    cooccurrence: Tensor | None = None
    log_cooccurrence: Tensor | None = None


def valence_signs(valence_groups: Sequence[int]) -> Tensor:
    """``S[c, c'] = +1`` if emotions ``c`` and ``c'`` share a valence group, else ``-1``."""
    groups = torch.as_tensor(list(valence_groups))
    return (groups[:, None] == groups[None, :]).float() * 2.0 - 1.0


class CooccurrenceRetrieval(nn.Module):
    r"""Hopfield retrieval of emotion co-occurrence from the prototypes of both branches.

    Memory: the patterns of every source (a branch's bank ``[C, K, D]`` or per-sample slots
    ``[B, C, K, D]``), each through a learned projection of its own (the banks live in different
    spaces), concatenated per emotion into ``C * K_total`` patterns. With the valence prior, the
    logit of query ``c`` for a pattern of emotion ``e`` gets ``+b`` if ``c`` and ``e`` share a
    valence group and ``-b`` otherwise (``b`` learnable):

    .. math::
        \alpha = \mathrm{softmax}\big(\beta (E W_q)(M W_k)^\top + b\, S\big), \quad
        E' = \mathrm{LN}(E + \alpha M W_v), \quad
        A_{c,e} = \textstyle\sum_{p \in e} \alpha_{c,p}

    The prior is built only when there are at least two valence groups (with one group it is a
    constant that the softmax ignores).

    Args:
        valence_groups: Valence group of each of the C emotions.
        dim: D.
        num_sources: Number of pattern sources (1 or 2 branches).
        valence_prior: Add the valence bias.
        valence_prior_init: Initial ``b``.
        dropout: Dropout on the retrieved states.
    """

    def __init__(
        self,
        valence_groups: Sequence[int],
        dim: int,
        num_sources: int,
        valence_prior: bool = True,
        valence_prior_init: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_sources))
        self.hopfield = HopfieldRetrieval(dim)
        self.register_buffer("signs", valence_signs(valence_groups), persistent=False)
        self.valence_strength = (
            nn.Parameter(torch.tensor(float(valence_prior_init)))
            if valence_prior and len(set(valence_groups)) > 1
            else None
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, queries: Tensor, memories: Sequence[Tensor], with_log: bool = True
    ) -> RetrievalOutput:
        """Retrieve from the memory and read off the co-occurrence matrix.

        Args:
            queries: Emotion queries ``E`` ``[B, C, D]``.
            memories: One pattern tensor per source, ``[C, K_s, D]`` or ``[B, C, K_s, D]``.
            with_log: Also compute ``log A`` in log space (what the co-occurrence loss needs).
                Without it ``A`` is summed from the attention directly, which saves a
                ``logsumexp`` on the prediction path.

        Returns:
            ``E'``, ``A`` and ``log A`` (``None`` without ``with_log``).
        """
        if len(memories) != len(self.projections):
            raise ValueError(
                f"CooccurrenceRetrieval: built for {len(self.projections)} memory sources, "
                f"got {len(memories)}"
            )
        batch, num_emotions, _ = queries.shape
        projected = [proj(m) for proj, m in zip(self.projections, memories, strict=True)]
        if any(p.dim() == 4 for p in projected):
            projected = [p.expand(batch, *p.shape[-3:]) for p in projected]
        # Concatenating along the prototype axis keeps the patterns grouped by emotion.
        memory = torch.cat(projected, dim=-2)
        per_emotion = memory.shape[-2]
        memory = memory.flatten(-3, -2)
        bias = None
        if self.valence_strength is not None:
            bias = (self.valence_strength * self.signs).repeat_interleave(per_emotion, dim=1)
        logits = self.hopfield.scores(
            self.hopfield.query(queries), self.hopfield.key(memory), bias=bias
        )
        grouped = (batch, num_emotions, num_emotions, per_emotion)
        if with_log:
            log_attention = F.log_softmax(logits, dim=-1)
            attention = log_attention.exp()
            log_cooccurrence = torch.logsumexp(log_attention.view(grouped), dim=-1)
            cooccurrence = log_cooccurrence.exp()
        else:
            attention = logits.softmax(dim=-1)
            log_cooccurrence = None
            cooccurrence = attention.view(grouped).sum(dim=-1)
        retrieved = torch.matmul(attention, self.hopfield.value(memory))
        emotions = self.norm(queries + self.dropout(retrieved))
        return RetrievalOutput(emotions, cooccurrence, log_cooccurrence)


class NoRetrieval(nn.Module):
    """The ``retrieval: none`` ablation: ``E' = E``, no co-occurrence matrix, no loss."""

    def forward(
        self, queries: Tensor, memories: Sequence[Tensor], with_log: bool = True
    ) -> RetrievalOutput:
        """``E`` unchanged."""
        return RetrievalOutput(queries)


def cooccurrence_target(target: Tensor) -> Tensor:
    """``T = d d^T`` row-normalised: ``T[c] = d`` where ``d_c > 0``, a zero row where ``d_c = 0``.

    Args:
        target: Target distributions ``[B, C]``.

    Returns:
        ``[B, C, C]``.
    """
    outer = target.unsqueeze(-1) * target.unsqueeze(-2)
    return outer / outer.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(outer.dtype).tiny)


def cooccurrence_loss(log_cooccurrence: Tensor, target: Tensor) -> Tensor:
    r"""``L_co = KL(T || A)``, averaged over samples and rows.

    .. math::
        L_{co} = \frac{1}{BC} \sum_{b,c} \sum_{e} T_{b,c,e} \ln \frac{T_{b,c,e}}{A_{b,c,e}}

    Rows of emotions absent from the target (all-zero rows of ``T``) contribute 0.

    Args:
        log_cooccurrence: ``log A`` ``[B, C, C]``.
        target: Target distributions ``d`` ``[B, C]``.

    Returns:
        A scalar tensor.
    """
    expected = cooccurrence_target(target)
    kl = (torch.special.xlogy(expected, expected) - expected * log_cooccurrence).sum(dim=-1)
    return kl.mean()
