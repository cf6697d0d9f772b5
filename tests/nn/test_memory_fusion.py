from __future__ import annotations

import math

import pytest
import torch

from mpcl.nn.fusion import ConcatFusion, MultiScaleAssociativeFusion, scale_mask
from mpcl.nn.memory import HopfieldRetrieval, pooling_matrix


def test_pooling_matrix_averages_windows_within_each_modality():
    matrix = pooling_matrix([5, 2], scale=2)
    # modality 1: windows {0,1}, {2,3}, {4}; modality 2: {5,6}
    assert matrix.shape == (4, 7)
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(4))
    tokens = torch.arange(7.0).view(1, 7, 1)
    pooled = (matrix @ tokens).flatten()
    torch.testing.assert_close(pooled, torch.tensor([0.5, 2.5, 4.0, 5.5]))
    torch.testing.assert_close(pooling_matrix([3], 1), torch.eye(3))
    assert pooling_matrix([3, 2], 4).shape == (2, 5)
    with pytest.raises(ValueError, match="scale"):
        pooling_matrix([3], 0)


def test_hopfield_retrieval_matches_formula():
    torch.manual_seed(0)
    hopfield = HopfieldRetrieval(dim=6, beta_init=0.7)
    q, x = torch.randn(2, 3, 6), torch.randn(2, 5, 6)
    out, attention = hopfield(q, x)
    logits = 0.7 * (q @ hopfield.query.weight.T) @ (x @ hopfield.key.weight.T).transpose(1, 2)
    expected_attention = logits.softmax(dim=-1)
    torch.testing.assert_close(attention, expected_attention)
    torch.testing.assert_close(out, expected_attention @ hopfield.value(x))
    # Shared patterns broadcast over the batch.
    out_shared, _ = hopfield(q, x[0])
    torch.testing.assert_close(out_shared[0], out[0])
    with pytest.raises(ValueError, match="beta_init"):
        HopfieldRetrieval(4, beta_init=-1.0)


def test_beta_stays_positive_under_gradient():
    hopfield = HopfieldRetrieval(dim=4, num_betas=3)
    assert hopfield.beta.shape == (3,)
    with torch.no_grad():
        hopfield.log_beta.fill_(-50.0)
    assert (hopfield.beta > 0).all()
    torch.testing.assert_close(HopfieldRetrieval(16).beta, torch.tensor([1 / math.sqrt(16)]))


def test_msam_shapes_gate_and_patterns():
    torch.manual_seed(0)
    fusion = MultiScaleAssociativeFusion([6, 4, 3], dim=8, scales=(1, 2, 4), memory_slots=2)
    # scales 1, 2, 4 over the stored modalities (4 and 3 tokens): 7 + 4 + 2 rows
    assert fusion.segments == [7, 4, 2] and fusion.pool.shape == (13, 7)
    tokens = [torch.randn(5, 6, 8), torch.randn(5, 4, 8), torch.randn(5, 3, 8)]
    fused, gate = fusion(tokens)
    assert fused.shape == (5, 6, 8) and gate.shape == (5, 6, 3)
    torch.testing.assert_close(gate.sum(-1), torch.ones(5, 6))
    assert torch.isfinite(fused).all()
    # The output depends on the stored modalities (the memory is read) ...
    changed = [tokens[0], tokens[1] + 1.0, tokens[2]]
    assert not torch.allclose(fusion(changed)[0], fused)
    # ... and is unaffected by a pattern-free batch change elsewhere: samples are independent.
    torch.testing.assert_close(fusion([t[:2] for t in tokens])[0], fused[:2])


def test_scale_mask_gives_each_scale_its_own_patterns_and_slots():
    mask = scale_mask([3, 2], memory_slots=1)
    # columns: 3 patterns of scale 0, 2 of scale 1, then one slot per scale
    allowed = torch.tensor([[1, 1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask == 0, allowed)
    assert torch.isneginf(mask[~allowed]).all()


@pytest.mark.parametrize("scales", [(1, 2, 4), (1,)])
def test_msam_one_pass_equals_retrieval_scale_by_scale(scales):
    torch.manual_seed(0)
    fusion = MultiScaleAssociativeFusion([6, 4, 3], dim=8, scales=scales, memory_slots=2).eval()
    with torch.no_grad():
        fusion.hopfield.log_beta.copy_(torch.randn(len(scales)))
        if fusion.gate is not None:
            fusion.gate.weight.normal_()
    tokens = [torch.randn(5, 6, 8), torch.randn(5, 4, 8), torch.randn(5, 3, 8)]
    fused, gate = fusion(tokens)
    # The formula, one scale at a time: R_s = retrieve_{beta_s}(H_a, [X_s; S_s]).
    anchor, patterns = tokens[0], fusion.pool @ torch.cat(tokens[1:], dim=1)
    queries, retrieved, start = fusion.hopfield.query(anchor), [], 0
    for index, size in enumerate(fusion.segments):
        stored = torch.cat(
            [patterns[:, start : start + size], fusion.slots[index].expand(5, -1, -1)], 1
        )
        start += size
        keys, values = fusion.hopfield.key(stored), fusion.hopfield.value(stored)
        retrieved.append(fusion.hopfield.attend(queries, keys, values, index)[0])
    if gate is None:
        mixture = retrieved[0]
    else:
        torch.testing.assert_close(gate, fusion.gate(anchor).softmax(-1))
        mixture = (torch.stack(retrieved, dim=-2) * gate.unsqueeze(-1)).sum(dim=-2)
    hidden = fusion.norm1(anchor + mixture)
    torch.testing.assert_close(fused, fusion.norm2(hidden + fusion.ffn(hidden)))


def test_msam_single_scale_and_auto_associative():
    fusion = MultiScaleAssociativeFusion([5], dim=8, scales=[1], memory_slots=0)
    assert fusion.gate is None and fusion.slots is None
    assert fusion.hopfield.log_beta.shape == (1,)
    fused, gate = fusion([torch.randn(3, 5, 8)])
    assert fused.shape == (3, 5, 8) and gate is None
    with pytest.raises(ValueError, match="scales"):
        MultiScaleAssociativeFusion([5], dim=8, scales=[1, 1])


def test_msam_all_anchor_keeps_every_modality_token():
    torch.manual_seed(0)
    fusion = MultiScaleAssociativeFusion([6, 4, 3], dim=8, scales=(1, 2), anchor="all").eval()
    # every modality is stored: scale 1 -> 13 rows, scale 2 -> 3 + 2 + 2 rows
    assert fusion.segments == [13, 7] and fusion.pool.shape == (20, 13)
    tokens = [torch.randn(5, 6, 8), torch.randn(5, 4, 8), torch.randn(5, 3, 8)]
    fused, gate = fusion(tokens)
    assert fused.shape == (5, 13, 8) and gate.shape == (5, 13, 2)
    # a change in the last modality reaches its own output tokens through the residual and the
    # first modality's tokens through retrieval
    changed = fusion([tokens[0], tokens[1], tokens[2] + 1.0])[0]
    assert not torch.allclose(changed[:, 10:], fused[:, 10:])
    assert not torch.allclose(changed[:, :6], fused[:, :6])
    with pytest.raises(ValueError, match="anchor"):
        MultiScaleAssociativeFusion([6, 4], dim=8, anchor="last")


def test_concat_fusion_concatenates_tokens():
    fusion = ConcatFusion(dim=8)
    fused, gate = fusion([torch.randn(2, 3, 8), torch.randn(2, 4, 8)])
    assert fused.shape == (2, 7, 8) and gate is None
    assert not any("slots" in n or "beta" in n for n, _ in fusion.named_parameters())
