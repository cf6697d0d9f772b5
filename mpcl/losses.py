"""Training objectives for emotion distribution learning."""

from __future__ import annotations

import torch
from torch import Tensor


def clamped_log(probs: Tensor) -> Tensor:
    """``log(max(p, tiny))``: the log of a distribution whose zero entries stay finite.

    For models that output probabilities rather than log-probabilities.
    """
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def kl_divergence_loss(target: Tensor, log_preds: Tensor) -> Tensor:
    r"""Batch-mean Kullback-Leibler divergence of the prediction from the target distribution.

    .. math::
        \mathcal{L} = \frac{1}{B} \sum_{b=1}^{B} \sum_{i=1}^{C} d_{b,i} \ln \frac{d_{b,i}}{p_{b,i}}

    Terms with :math:`d_{b,i} = 0` contribute 0 (``xlogy`` convention), so one-hot and sparse
    targets are handled exactly.

    Args:
        target: Target distributions ``d``, shape ``[B, C]``.
        log_preds: Log of the predicted distributions ``ln p``, shape ``[B, C]`` (pass
            ``log_softmax`` outputs for numerical stability).

    Returns:
        A scalar tensor.
    """
    if target.shape != log_preds.shape:
        raise ValueError(
            f"kl_divergence_loss: target shape {tuple(target.shape)} != "
            f"prediction shape {tuple(log_preds.shape)}"
        )
    per_sample = (torch.special.xlogy(target, target) - target * log_preds).sum(dim=-1)
    return per_sample.mean()
