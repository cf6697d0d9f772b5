"""HeLo's label embeddings, their correlation matrix and the label-correlation-driven attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpcl.baselines.helo.attention import CrossAttentionBlock


def embedding_correlation(embeddings: Tensor) -> Tensor:
    r"""Learned label correlation: the Gram matrix of the L2-normalised label embeddings.

    .. math:: A_{ij} = \frac{e_i^\top e_j}{\lVert e_i \rVert \lVert e_j \rVert}

    Args:
        embeddings: Label embeddings ``[C, D]``.

    Returns:
        ``[C, C]``, symmetric, ones on the diagonal.
    """
    unit = nn.functional.normalize(embeddings, dim=-1)
    return unit @ unit.T


def target_correlation(target: Tensor) -> Tensor:
    r"""Ground-truth label correlation of each sample: the outer product of the normalised target.

    .. math:: G_b = \hat d_b \hat d_b^\top, \qquad \hat d_b = d_b / \lVert d_b \rVert

    Args:
        target: Target distributions ``[B, C]``.

    Returns:
        ``[B, C, C]``.
    """
    unit = nn.functional.normalize(target, dim=-1)
    return unit.unsqueeze(2) * unit.unsqueeze(1)


def correlation_alignment_loss(learned: Tensor, target: Tensor) -> Tensor:
    r"""Mean squared error between the learned and every sample's ground-truth correlation.

    .. math::
        \mathcal{L}_{corr} = \frac{1}{B C^2} \sum_b \lVert A - \hat d_b \hat d_b^\top \rVert_F^2

    Args:
        learned: The learned correlation ``A`` ``[C, C]``.
        target: Target distributions ``[B, C]``.

    Returns:
        A scalar tensor.
    """
    truth = target_correlation(target)
    return nn.functional.mse_loss(learned.expand_as(truth), truth)


class LabelEmbedding(nn.Module):
    """A learnable embedding per emotion, initialised uniformly in ``[0, 1)``.

    Args:
        num_emotions: Number C of emotions.
        dim: Embedding size D.
    """

    def __init__(self, num_emotions: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(num_emotions, dim))

    def forward(self) -> Tensor:
        """The label embeddings ``[C, D]``."""
        return self.weight


class LabelCorrelationAttention(nn.Module):
    r"""Label-correlation-driven cross-attention: label queries attend over the C fused tokens.

    .. math::
        O = \mathrm{LayerNorm}\Big(E + \mathrm{softmax}\Big(\frac{(E W^q)(Z W^k)^\top}{\sqrt D}
            + A\Big) Z W^v W^o\Big)

    with ``E`` the label embeddings ``[C, D]`` (shared by the batch), ``Z`` the fused tokens
    ``[B, C, D]`` and ``A`` the learned label correlation added to the logits (one head).

    Args:
        dim: Model size D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = CrossAttentionBlock(dim, num_heads=1)

    def forward(
        self, embeddings: Tensor, tokens: Tensor, correlation: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Label-wise representations ``[B, C, D]`` and the attention weights ``[B, C, C]``.

        Args:
            embeddings: Label embeddings ``[C, D]``.
            tokens: Fused tokens ``[B, C, D]`` (one per emotion slot).
            correlation: Learned correlation ``[C, C]``, added to the attention logits.
        """
        queries = embeddings.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        out, weights = self.block(queries, tokens, correlation)
        return out, weights.squeeze(1)
