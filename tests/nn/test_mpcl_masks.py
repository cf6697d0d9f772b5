"""MPCL with missing modalities: masked tokens stay out of MSAM and the prototype readout, and a
missing branch is imputed from the present branch's prototype relations."""

from __future__ import annotations

import torch

from datamodules.metadata import DatasetMetadata
from mpcl.nn.distillation import sample_prototype_relations
from mpcl.nn.fusion import MultiScaleAssociativeFusion
from mpcl.nn.mpcl_net import BEHAVIORAL, PHYSIOLOGICAL, MPCLNet
from mpcl.nn.prototypes import PrototypeBank, PrototypeOutput

META = DatasetMetadata(
    emotion_names=("joy", "calm", "awe", "fear", "anger", "sad"),
    valence_groups=(0, 0, 0, 1, 1, 1),
    modality_shapes={"eeg": (4, 3), "gsr": (6,), "face": (12,)},
    physiological=("eeg", "gsr"),
    behavioral=("face",),
)


def test_msam_ignores_the_tokens_of_a_missing_modality() -> None:
    torch.manual_seed(0)
    fusion = MultiScaleAssociativeFusion([4, 3, 2], dim=8, memory_slots=2).eval()
    anchor, gsr, ppg = torch.randn(5, 4, 8), torch.randn(5, 3, 8), torch.randn(5, 2, 8)
    present = [None, torch.tensor([True, False, True, False, True]), None]
    out, _ = fusion([anchor, gsr, ppg], present)
    other, _ = fusion([anchor, gsr * 100 + 7, ppg], present)
    rows = ~present[1]
    torch.testing.assert_close(out[rows], other[rows], rtol=0, atol=0)
    assert not torch.allclose(out[~rows], other[~rows])


def test_msam_without_slots_and_no_stored_modality_stays_finite() -> None:
    fusion = MultiScaleAssociativeFusion([4, 3], dim=8, memory_slots=0).eval()
    out, _ = fusion(
        [torch.randn(2, 4, 8), torch.randn(2, 3, 8)], [None, torch.tensor([0, 1]).bool()]
    )
    assert torch.isfinite(out).all()


def test_prototype_readout_leaves_out_missing_tokens() -> None:
    bank = PrototypeBank(3, 2, 8).eval()
    tokens = torch.randn(4, 5, 8)
    mask = torch.tensor([[1, 1, 0, 0, 1]] * 4).bool()
    changed = tokens.clone()
    changed[:, 2:4] = 1e3
    a, b = bank(tokens, token_mask=mask), bank(changed, token_mask=mask)
    torch.testing.assert_close(a.emotions, b.emotions, rtol=0, atol=0)
    torch.testing.assert_close(a.pooled, tokens[:, [0, 1, 4]].mean(dim=1))


def test_memory_is_not_written_by_windows_whose_branch_is_missing() -> None:
    bank = PrototypeBank(3, 2, 8, momentum=0.5).train()
    before = bank.bank.clone()
    mask = torch.zeros(4, 5, dtype=torch.bool)
    bank(torch.randn(4, 5, 8), torch.softmax(torch.randn(4, 3), -1), token_mask=mask)
    torch.testing.assert_close(bank.bank, before, rtol=0, atol=0)


def test_a_missing_branch_is_imputed_through_the_aligned_prototypes() -> None:
    torch.manual_seed(0)
    net = MPCLNet(META, hidden_dim=8, prototypes_per_emotion=2).eval()
    c, k, d = 6, 2, 8
    outs = {
        name: PrototypeOutput(
            torch.randn(3, c, d), torch.randn(3, d), torch.randn(c, k, d), torch.randn(c, k, d)
        )
        for name in (PHYSIOLOGICAL, BEHAVIORAL)
    }
    for out in outs.values():
        out.bank = out.memory
    present = {PHYSIOLOGICAL: None, BEHAVIORAL: torch.tensor([True, False, True])}
    imputed = net._impute_missing_branches(outs, present)
    phys, behav = outs[PHYSIOLOGICAL], outs[BEHAVIORAL]
    relations = sample_prototype_relations(phys.pooled[1:2], phys.bank, net.tau).exp()
    expected = relations @ behav.bank.flatten(0, 1)
    torch.testing.assert_close(imputed[BEHAVIORAL].pooled[1:2], expected)
    expected_z = net.prototypes[BEHAVIORAL].read(expected.unsqueeze(1), behav.bank)
    torch.testing.assert_close(imputed[BEHAVIORAL].emotions[1:2], expected_z)
    # Present windows keep their own representation.
    torch.testing.assert_close(imputed[BEHAVIORAL].emotions[0], behav.emotions[0])
    torch.testing.assert_close(imputed[PHYSIOLOGICAL].emotions, phys.emotions)
