from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mpcl.nn.distillation import (
    emotion_relations,
    mutual_kl,
    prototype_relation_distillation,
    sample_prototype_relations,
)


def test_sample_prototype_relations_are_cosine_softmax():
    embeddings, bank = torch.randn(3, 4), torch.randn(2, 5, 4)
    log_r = sample_prototype_relations(embeddings, bank, tau=0.1)
    assert log_r.shape == (3, 10)
    cosine = F.cosine_similarity(embeddings[:, None], bank.reshape(10, 4)[None], dim=-1)
    torch.testing.assert_close(log_r, torch.log_softmax(cosine / 0.1, -1))
    # Scale invariance: cosines ignore the embedding norm.
    torch.testing.assert_close(sample_prototype_relations(7 * embeddings, bank, 0.1), log_r)


def test_emotion_relations_skip_the_diagonal():
    z = torch.randn(2, 4, 6)
    log_r = emotion_relations(z, tau=0.5)
    assert log_r.shape == (2, 4, 3)
    torch.testing.assert_close(log_r.exp().sum(-1), torch.ones(2, 4))
    cosine = F.cosine_similarity(z[:, :, None], z[:, None], dim=-1)
    for c in range(4):  # explicit reference, fine in a test
        others = [e for e in range(4) if e != c]
        torch.testing.assert_close(log_r[:, c], torch.log_softmax(cosine[:, c, others] / 0.5, -1))


def test_mutual_kl_is_symmetric_zero_at_agreement_and_stops_target_gradients():
    log_p = torch.log_softmax(torch.randn(3, 5), -1).requires_grad_()
    log_q = torch.log_softmax(torch.randn(3, 5), -1).requires_grad_()
    loss = mutual_kl(log_p, log_q)
    p, q = log_p.exp(), log_q.exp()
    expected = ((p * (log_p - log_q)).sum(-1) + (q * (log_q - log_p)).sum(-1)).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(mutual_kl(log_q, log_p), loss)
    assert mutual_kl(log_p, log_p.detach().clone()).abs() < 1e-6
    loss.backward()
    # d/d log_p only through KL(sg(q) || p): -q (the sg(p) target term contributes nothing).
    torch.testing.assert_close(log_p.grad, -q.detach() / 3)


def test_prd_loss_pulls_branches_together():
    torch.manual_seed(0)
    pooled_p, pooled_b = torch.randn(8, 6), torch.randn(8, 6, requires_grad=True)
    bank = torch.randn(3, 2, 6)
    z_p, z_b = torch.randn(8, 3, 6), torch.randn(8, 3, 6, requires_grad=True)
    optimizer = torch.optim.Adam([pooled_b, z_b], lr=0.05)
    losses = []
    for _ in range(100):
        loss = prototype_relation_distillation(pooled_p, bank, z_p, pooled_b, bank, z_b, tau=0.5)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.1 * losses[0]
    same = prototype_relation_distillation(pooled_p, bank, z_p, pooled_p, bank, z_p)
    assert same.abs() < 1e-5
    with pytest.raises(ValueError, match="tau"):
        prototype_relation_distillation(pooled_p, bank, z_p, pooled_p, bank, z_p, tau=0.0)
