from __future__ import annotations

import itertools

import torch

from mpcl.nn.retrieval import (
    BranchGate,
    CooccurrenceRetrieval,
    NoRetrieval,
    cooccurrence_loss,
    cooccurrence_target,
    valence_signs,
)

GROUPS = (0, 0, 1, 1, 1)


def retrieval_inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randn(4, 5, 8, generator=generator)
    banks = [torch.randn(5, 3, 8, generator=generator), torch.randn(5, 3, 8, generator=generator)]
    return queries, banks


def same_valence_mass(a: torch.Tensor) -> torch.Tensor:
    same = valence_signs(GROUPS) > 0
    return (a * same).sum(-1).mean()


def test_cooccurrence_is_row_stochastic_and_sums_attention_by_emotion():
    torch.manual_seed(0)
    module = CooccurrenceRetrieval(GROUPS, dim=8, num_sources=2)
    queries, banks = retrieval_inputs()
    out = module(queries, banks)
    assert out.emotions.shape == (4, 5, 8) and out.cooccurrence.shape == (4, 5, 5)
    assert (out.cooccurrence >= 0).all()
    torch.testing.assert_close(out.cooccurrence.sum(-1), torch.ones(4, 5))
    torch.testing.assert_close(out.log_cooccurrence.exp(), out.cooccurrence)
    # Per-sample memories (the prototypes: none ablation) work the same way.
    per_sample = [torch.randn(4, 5, 1, 8), torch.randn(4, 5, 1, 8)]
    torch.testing.assert_close(module(queries, per_sample).cooccurrence.sum(-1), torch.ones(4, 5))


def test_prediction_path_without_log_gives_the_same_retrieval():
    torch.manual_seed(0)
    module = CooccurrenceRetrieval(GROUPS, dim=8, num_sources=2).eval()
    queries, banks = retrieval_inputs()
    with_log = module(queries, banks)
    without = module(queries, banks, with_log=False)
    assert without.log_cooccurrence is None
    torch.testing.assert_close(without.cooccurrence, with_log.cooccurrence)
    torch.testing.assert_close(without.emotions, with_log.emotions)
    torch.testing.assert_close(without.cooccurrence.sum(-1), torch.ones(4, 5))


def test_valence_prior_moves_mass_to_same_valence_columns():
    torch.manual_seed(0)
    module = CooccurrenceRetrieval(GROUPS, dim=8, num_sources=2, valence_prior_init=0.0)
    queries, banks = retrieval_inputs()
    masses = []
    for strength in (-1.0, 0.0, 0.5, 1.0, 3.0):
        with torch.no_grad():
            module.valence_strength.fill_(strength)
            masses.append(same_valence_mass(module(queries, banks).cooccurrence).item())
    assert all(a < b for a, b in itertools.pairwise(masses))
    assert masses[-1] > 0.95
    torch.manual_seed(0)
    without = CooccurrenceRetrieval(GROUPS, dim=8, num_sources=2, valence_prior=False)
    assert without.valence_strength is None
    with torch.no_grad():
        module.valence_strength.fill_(0.0)
    torch.testing.assert_close(
        without(queries, banks).cooccurrence, module(queries, banks).cooccurrence
    )


def test_valence_prior_needs_two_groups():
    module = CooccurrenceRetrieval((0, 0, 0), dim=4, num_sources=1)
    assert module.valence_strength is None


def test_cooccurrence_target_and_loss():
    d = torch.tensor([[0.5, 0.3, 0.2, 0.0, 0.0]])
    t = cooccurrence_target(d)
    torch.testing.assert_close(t[0, :3], d.expand(3, 5))  # row c of d d^T / rowsum is d
    torch.testing.assert_close(t[0, 3:], torch.zeros(2, 5))
    perfect = torch.log(t.clamp_min(1e-12))
    perfect[0, 3:] = torch.log(torch.full((2, 5), 0.2))  # absent rows: anything
    assert cooccurrence_loss(perfect, d).abs() < 1e-6
    uniform = torch.log(torch.full((1, 5, 5), 0.2))
    # rows 0-2 each contribute KL(d || uniform), rows 3-4 nothing; mean over the 5 rows.
    kl_row = (d[0, :3] * torch.log(d[0, :3] / 0.2)).sum()
    torch.testing.assert_close(cooccurrence_loss(uniform, d), 3 * kl_row / 5)


def test_branch_gate_and_no_retrieval():
    gate = BranchGate(dim=4)
    zp, zb = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    e, g = gate(zp, zb)
    torch.testing.assert_close(e, g * zp + (1 - g) * zb)
    assert ((g > 0) & (g < 1)).all()
    out = NoRetrieval()(zp, [])
    assert out.emotions is zp and out.cooccurrence is None and out.log_cooccurrence is None
