"""Emotion-specific prototype memory banks (one per branch) and the ``prototypes: none`` ablation.

Both modules map a branch's fused tokens ``H`` ``[B, T, D]`` to a :class:`PrototypeOutput`: one
vector per emotion ``Z`` ``[B, C, D]``, the pooled branch embedding, and the patterns that the
co-occurrence retrieval stores for this branch.

See docs/model.md, section 'Prototype banks'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from mpcl.nn.memory import HopfieldRetrieval

PrototypeUpdate = Literal["ema", "learned"]
EMAWeighting = Literal["target", "centered"]


@dataclass
class PrototypeOutput:
    """What a branch's prototype stage hands on.

    Attributes:
        emotions: ``Z`` ``[B, C, D]``: one representation per emotion.
        pooled: The mean branch embedding ``[B, D]`` (token average of ``H``).
        memory: Patterns for co-occurrence retrieval, grouped by emotion: ``[C, K, D]`` shared by
            the batch, or ``[B, C, K, D]`` per sample.
        bank: The prototypes ``[C, K, D]`` this forward read (before any memory update), or
            ``None`` without a bank.
        assignments: Index of the nearest prototype within each emotion ``[B, C]``, or ``None``.
    """

    emotions: Tensor
    pooled: Tensor
    memory: Tensor
    bank: Tensor | None = None
    assignments: Tensor | None = None


def key_bias(token_mask: Tensor | None) -> Tensor | None:
    """Additive attention logits ``[B, 1, T]``: 0 on present tokens, ``-inf`` on missing ones.

    A window with no present token gets zeros everywhere (attends to all its tokens), so the
    softmax stays defined; callers replace such windows' results.
    """
    if token_mask is None:
        return None
    usable = token_mask | ~token_mask.any(dim=1, keepdim=True)
    bias = torch.zeros(usable.shape, device=usable.device)
    return bias.masked_fill(~usable, float("-inf")).unsqueeze(1)


def masked_token_mean(tokens: Tensor, token_mask: Tensor | None) -> Tensor:
    """Mean of the present tokens ``[B, D]`` (all tokens where a window has none present)."""
    if token_mask is None:
        return tokens.mean(dim=1)
    usable = token_mask | ~token_mask.any(dim=1, keepdim=True)
    weights = usable.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1)


class PrototypeBank(nn.Module):
    r"""A bank ``Pi`` ``[C, K, D]`` of K prototypes per emotion, read by attention, written by EMA.

    **Readout.** Every prototype queries the branch tokens (Hopfield retrieval); the K results of an
    emotion, each with its prototype as residual (as in a decoder cross-attention block, so the
    emotion's identity survives when the branch has few tokens), are averaged:

    .. math::
        Z_c = \mathrm{LN}\Big(\tfrac{1}{K}\textstyle\sum_k \big(\Pi_{c,k}
        + \mathrm{retrieve}(\Pi_{c,k}, H)\big)\Big)

    **Memory update** (``update="ema"``, training only, no gradient). With the pooled embedding
    ``h_b`` of sample ``b``, its nearest prototype (cosine) ``a_{b,c}`` within emotion ``c`` and the
    target probability ``d_{b,c}``:

    .. math::
        w_{c,k} = \textstyle\sum_b d_{b,c}[a_{b,c} = k], \quad
        m_{c,k} = \textstyle\sum_b d_{b,c}[a_{b,c} = k]\, h_b / w_{c,k}, \quad
        \Pi_{c,k} \leftarrow \mu \Pi_{c,k} + (1 - \mu)\, m_{c,k} \text{ where } w_{c,k} > 0

    With ``weighting="centered"`` the weight is the target's excess over its batch mean,
    ``d_{b,c} - \bar d_{c}`` where positive (zero elsewhere): a prototype of emotion ``c`` then
    learns from the samples that feel ``c`` more than usual. Plain target weights (``"target"``)
    move every emotion's prototypes toward nearly the same mean when targets are flat (PANAS
    distributions are), so the banks lose their emotion specificity; the centred weights keep it.

    Under ``torch.distributed`` the sums ``w`` and ``w m`` are all-reduced before the division, so
    every replica applies the same update (the one that a single process would compute on the
    union of the batches) and the banks stay identical. With ``update="learned"`` the bank is a
    plain parameter trained by gradient and never written.

    Args:
        num_emotions: C.
        prototypes_per_emotion: K.
        dim: D.
        update: ``"ema"`` (a buffer written by the memory update) or ``"learned"`` (a parameter).
        momentum: EMA momentum ``mu``.
        weighting: ``"target"`` (``d_{b,c}``) or ``"centered"``
            (``max(0, d_{b,c} - mean_b d_{b,c})``, the batch mean taken over all processes).
    """

    def __init__(
        self,
        num_emotions: int,
        prototypes_per_emotion: int,
        dim: int,
        update: PrototypeUpdate = "ema",
        momentum: float = 0.99,
        weighting: EMAWeighting = "target",
    ) -> None:
        super().__init__()
        if update not in ("ema", "learned"):
            raise ValueError(f"PrototypeBank: update must be 'ema' or 'learned', got {update!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"PrototypeBank: momentum must be in [0, 1), got {momentum}")
        if prototypes_per_emotion < 1:
            raise ValueError(
                f"PrototypeBank: prototypes_per_emotion must be >= 1, got {prototypes_per_emotion}"
            )
        if weighting not in ("target", "centered"):
            raise ValueError(
                f"PrototypeBank: weighting must be 'target' or 'centered', got {weighting!r}"
            )
        self.update = update
        self.momentum = momentum
        self.weighting = weighting
        # Unit-variance entries match the scale of layer-normalised branch tokens.
        bank = torch.randn(num_emotions, prototypes_per_emotion, dim)
        if update == "learned":
            self.bank = nn.Parameter(bank)
        else:
            self.register_buffer("bank", bank)
        self.readout = HopfieldRetrieval(dim)
        self.norm = nn.LayerNorm(dim)

    @torch.no_grad()
    def assign(self, embeddings: Tensor, bank: Tensor | None = None) -> Tensor:
        """Nearest prototype (cosine similarity) of each embedding within every emotion.

        Args:
            embeddings: ``[B, D]``.
            bank: Prototypes ``[C, K, D]``; defaults to the module's bank.

        Returns:
            Long indices ``[B, C]`` in ``[0, K)``.
        """
        bank = self.bank if bank is None else bank
        num_emotions, k, dim = bank.shape
        unit_bank = F.normalize(bank.reshape(num_emotions * k, dim), dim=-1)
        similarity = F.normalize(embeddings, dim=-1) @ unit_bank.T
        return similarity.view(-1, num_emotions, k).argmax(dim=-1)

    @torch.no_grad()
    def update_memory(
        self,
        embeddings: Tensor,
        target: Tensor,
        assignments: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> None:
        """One EMA step of every prototype toward the target-weighted embeddings assigned to it.

        Args:
            embeddings: Pooled branch embeddings ``[B, D]``.
            target: Target distributions ``[B, C]`` (the weights).
            assignments: Nearest prototypes ``[B, C]``; computed with :meth:`assign` if omitted.
            rows: Which samples may write ``[B]`` (bool; ``None``: all): a window whose branch is
                missing has no embedding of its own and must not move the memory.
        """
        num_emotions, k, dim = self.bank.shape
        if target.shape != (embeddings.shape[0], num_emotions):
            raise ValueError(
                f"PrototypeBank.update_memory: target must be [B={embeddings.shape[0]}, "
                f"C={num_emotions}], got {list(target.shape)}"
            )
        embeddings = embeddings.detach().to(self.bank.dtype)
        if assignments is None:
            assignments = self.assign(embeddings)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        # Memory is accumulated in the bank's precision, also under mixed-precision autocast.
        with torch.autocast(embeddings.device.type, enabled=False):
            target = target.detach().to(self.bank.dtype)
            if self.weighting == "centered":
                target = (target - self._global_mean(target, distributed)).clamp_min(0.0)
            if rows is not None:
                target = target * rows.to(target.dtype).unsqueeze(-1)
            weights = F.one_hot(assignments, k).to(self.bank.dtype)
            weights = weights * target[..., None]
            sums = torch.einsum("bck,bd->ckd", weights, embeddings)
            totals = weights.sum(dim=0)
        # One flat buffer: a single all-reduce per step.
        packed = torch.cat([sums.reshape(-1), totals.reshape(-1)])
        if distributed:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        sums = packed[: sums.numel()].view(num_emotions, k, dim)
        totals = packed[sums.numel() :].view(num_emotions, k, 1)
        means = sums / totals.clamp_min(torch.finfo(totals.dtype).tiny)
        moved = self.momentum * self.bank + (1.0 - self.momentum) * means
        self.bank.copy_(torch.where(totals > 0, moved, self.bank))

    @staticmethod
    def _global_mean(target: Tensor, distributed: bool) -> Tensor:
        """Mean target ``[C]`` over the batch of every process (the local batch without DDP)."""
        packed = torch.cat([target.sum(dim=0), target.new_tensor([len(target)])])
        if distributed:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        return packed[:-1] / packed[-1].clamp_min(1.0)

    def read(self, tokens: Tensor, bank: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """The emotion representations ``Z`` ``[B, C, D]`` that ``bank`` reads from ``tokens``.

        Args:
            tokens: ``[B, T, D]``.
            bank: ``[C, K, D]``.
            token_mask: Which tokens are present ``[B, T]``; missing ones get no attention (a
                window with none attends to all: its tokens are zero-fill constants then).
        """
        num_emotions, k, dim = bank.shape
        retrieved, _ = self.readout(
            bank.reshape(num_emotions * k, dim), tokens, key_bias(token_mask)
        )
        retrieved = retrieved.view(tokens.shape[0], num_emotions, k, dim)
        return self.norm((bank + retrieved).mean(dim=2))

    def forward(
        self,
        tokens: Tensor,
        target: Tensor | None = None,
        token_mask: Tensor | None = None,
    ) -> PrototypeOutput:
        """Read the bank with the branch tokens, then (training, EMA, target given) write it.

        Args:
            tokens: Fused branch tokens ``[B, T, D]``.
            target: Target distributions ``[B, C]``; the memory update runs only with a target,
                in training mode and with ``update="ema"``.
            token_mask: Which tokens are present ``[B, T]`` (``None``: all). Missing tokens are
                left out of the readout and of the pooled embedding; windows without any present
                token do not write the memory.

        Returns:
            The branch's :class:`PrototypeOutput`.
        """
        writes = self.training and target is not None and self.update == "ema"
        # The EMA write below is in place; the readout must hold a snapshot, since autograd keeps
        # the bank it multiplied for the backward pass. Without a write no copy is needed.
        bank = self.bank.clone() if writes else self.bank
        emotions = self.read(tokens, bank, token_mask)
        pooled = masked_token_mean(tokens, token_mask)
        assignments = self.assign(pooled.detach(), bank.detach())
        if writes:
            rows = None if token_mask is None else token_mask.any(dim=1)
            self.update_memory(pooled, target, assignments, rows)
        return PrototypeOutput(emotions, pooled, bank, bank, assignments)


class NoPrototypes(nn.Module):
    """The ``prototypes: none`` ablation: the pooled branch vector broadcast to C emotion slots.

    ``Z_c = LN(mean_t H_t + e_c)``, with a learned slot embedding ``e_c`` so that emotion slots are
    distinguishable downstream. The slots themselves are the branch's retrieval patterns.

    Args:
        num_emotions: C.
        dim: D.
    """

    def __init__(self, num_emotions: int, dim: int) -> None:
        super().__init__()
        self.slot_embedding = nn.Parameter(torch.randn(num_emotions, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, tokens: Tensor, target: Tensor | None = None, token_mask: Tensor | None = None
    ) -> PrototypeOutput:
        """Per-emotion slots of the pooled (present) tokens; ``target`` is unused (no memory)."""
        pooled = masked_token_mean(tokens, token_mask)
        emotions = self.norm(pooled.unsqueeze(1) + self.slot_embedding)
        return PrototypeOutput(emotions, pooled, emotions.unsqueeze(2))
