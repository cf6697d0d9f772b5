r"""Prototype relation distillation (PRD): align two branches by the relations they induce.

Raw physiological and behavioral features live in different spaces; PRD aligns what each branch
says about a sample *relative to its own prototypes and emotions*:

* sample-to-prototype relations ``r_b = softmax(cos(h_b, Pi_b) / tau)`` over the C*K prototypes
  of branch b (prototype ``(c, k)`` of one bank corresponds to ``(c, k)`` of the other),
* emotion-to-emotion relations ``R_b[c] = softmax_{c' != c}(cos(Z_{b,c}, Z_{b,c'}) / tau)``.

.. math::
    L_{PRD} = KL(sg(r_P) \| r_B) + KL(sg(r_B) \| r_P) + KL(sg(R_P) \| R_B) + KL(sg(R_B) \| R_P)

with ``sg`` the stop-gradient on the target side, so each branch learns from the other's current
relations without dragging them toward itself. Cosines instead of raw dot products keep the
relations independent of the embedding scale; the diagonal of ``R`` is left out because
``cos(z, z) = 1`` always, which would only dilute the informative off-diagonal relations.

See docs/model.md, section 'Prototype relation distillation'.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sample_prototype_relations(embeddings: Tensor, bank: Tensor, tau: float) -> Tensor:
    """Log-relations of each sample to all prototypes of a bank.

    Args:
        embeddings: Pooled branch embeddings ``[B, D]``.
        bank: Prototypes ``[C, K, D]``.
        tau: Temperature.

    Returns:
        ``log r`` ``[B, C*K]``: log-softmax of the cosine similarities over ``tau``.
    """
    cosine = F.normalize(embeddings, dim=-1) @ F.normalize(bank.flatten(0, 1), dim=-1).T
    return F.log_softmax(cosine / tau, dim=-1)


def emotion_relations(emotions: Tensor, tau: float) -> Tensor:
    """Log-relations of every emotion representation to the other emotions of the same sample.

    Args:
        emotions: ``Z`` ``[B, C, D]`` with ``C >= 2``.
        tau: Temperature.

    Returns:
        ``log R`` ``[B, C, C-1]``: row ``c`` is a log-softmax over the emotions ``c' != c`` (in
        their order, ``c`` skipped).
    """
    batch, num_emotions, _ = emotions.shape
    unit = F.normalize(emotions, dim=-1)
    cosine = unit @ unit.transpose(-1, -2)
    # Dropping the diagonal of a C x C matrix: flattened, the diagonal sits every C+1 entries, so
    # skipping the first entry and viewing rows of C+1 puts it in the last column of each row.
    off_diagonal = (
        cosine.flatten(1)[:, 1:]
        .view(batch, num_emotions - 1, num_emotions + 1)[:, :, :-1]
        .reshape(batch, num_emotions, num_emotions - 1)
    )
    return F.log_softmax(off_diagonal / tau, dim=-1)


def mutual_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``KL(sg(p) || q) + KL(sg(q) || p)`` over the last axis, averaged over all leading axes.

    Args:
        log_p: Log-probabilities ``[..., N]``.
        log_q: Log-probabilities of the same shape.

    Returns:
        A scalar tensor.
    """
    p, q = log_p.detach().exp(), log_q.detach().exp()
    forward = (p * (log_p.detach() - log_q)).sum(dim=-1)
    backward = (q * (log_q.detach() - log_p)).sum(dim=-1)
    return (forward + backward).mean()


def prototype_relation_distillation(
    pooled_p: Tensor,
    bank_p: Tensor,
    emotions_p: Tensor,
    pooled_b: Tensor,
    bank_b: Tensor,
    emotions_b: Tensor,
    tau: float = 0.1,
) -> Tensor:
    """The PRD loss between the physiological (``_p``) and behavioral (``_b``) branches.

    Args:
        pooled_p: Pooled physiological embeddings ``[B, D]``.
        bank_p: Physiological prototypes ``[C, K, D]``.
        emotions_p: Physiological emotion representations ``[B, C, D]``.
        pooled_b: Pooled behavioral embeddings ``[B, D]``.
        bank_b: Behavioral prototypes ``[C, K, D]``.
        emotions_b: Behavioral emotion representations ``[B, C, D]``.
        tau: Temperature of both relation softmaxes.

    Returns:
        A scalar tensor: the sample-to-prototype plus the emotion-to-emotion mutual KL.
    """
    if tau <= 0:
        raise ValueError(f"prototype_relation_distillation: tau must be positive, got {tau}")
    if bank_p.shape != bank_b.shape:
        raise ValueError(
            "prototype_relation_distillation: the banks must have equal shapes [C, K, D], got "
            f"{list(bank_p.shape)} and {list(bank_b.shape)}"
        )
    sample = mutual_kl(
        sample_prototype_relations(pooled_p, bank_p, tau),
        sample_prototype_relations(pooled_b, bank_b, tau),
    )
    emotion = mutual_kl(emotion_relations(emotions_p, tau), emotion_relations(emotions_b, tau))
    return sample + emotion
