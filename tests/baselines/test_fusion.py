"""Deep fusion baselines: late fusion (learned mixture) and cross-attention fusion."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import SMALL, assert_distributions, make_table

from datamodules.metadata import DatasetMetadata
from mpcl.baselines import CrossAttentionFusionModule, LateFusionModule

ONE_BRANCH = DatasetMetadata(
    emotion_names=("a", "b"),
    valence_groups=(0, 1),
    modality_shapes={"eeg": (3,)},
    physiological=("eeg",),
    behavioral=(),
)


def test_late_fusion_is_the_mixture_of_its_branches():
    model = LateFusionModule(SMALL, hidden_dims=[16], initial_weight=0.3).eval()
    preds, aux = model(make_table(8))
    assert_distributions(preds, 8, SMALL.num_emotions)
    alpha = aux["mixture_weight"]
    torch.testing.assert_close(alpha, torch.tensor(0.3))
    mixture = (
        alpha * aux["log_probs_physiological"].exp()
        + (1 - alpha) * aux["log_probs_behavioral"].exp()
    )
    torch.testing.assert_close(preds, mixture)
    torch.testing.assert_close(aux["log_probs"], preds.log())


@pytest.mark.parametrize("logit", [-60.0, 0.0, 60.0])
def test_late_fusion_weight_stays_in_unit_interval(logit):
    model = LateFusionModule(SMALL, hidden_dims=[8])
    with torch.no_grad():
        model.mixture_logit.fill_(logit)
    preds, aux = model(make_table(5))
    assert 0.0 <= float(aux["mixture_weight"]) <= 1.0
    assert bool(torch.isfinite(aux["log_probs"]).all())
    assert_distributions(preds, 5, SMALL.num_emotions)


def test_late_fusion_learns_the_mixture_weight():
    model = LateFusionModule(SMALL, hidden_dims=[8])
    batch = make_table(16)
    loss = model.compute_losses(batch, *model(batch))["loss"]
    loss.backward()
    assert model.mixture_logit.grad is not None and float(model.mixture_logit.grad.abs()) > 0
    for head in model.heads.values():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


@pytest.mark.parametrize("module", [LateFusionModule, CrossAttentionFusionModule])
def test_fusion_needs_both_branches(module):
    with pytest.raises(ValueError, match="both branches"):
        module(ONE_BRANCH)


def test_cross_attention_outputs_distributions_and_attention():
    model = CrossAttentionFusionModule(
        SMALL, dim=16, num_heads=2, num_layers=2, token_groups={"face": 3}
    ).eval()
    preds, aux = model(make_table(6))
    assert_distributions(preds, 6, SMALL.num_emotions)
    # physiological tokens: 4 EEG rows + the flat GSR tokens; behavioral: 3 face groups
    gsr_tokens = model.tokenizers.num_tokens("gsr")
    assert aux["attention"].shape == (6, 4 + gsr_tokens, 3)
    torch.testing.assert_close(aux["attention"].sum(-1), torch.ones(6, 4 + gsr_tokens))


def test_cross_attention_mixes_branches():
    """Changing only the behavioral input changes the prediction through the attention path."""
    model = CrossAttentionFusionModule(SMALL, dim=16, num_heads=2, num_layers=1).eval()
    batch = make_table(4)
    other = dict(batch, face=batch["face"] + 1.0)
    with torch.no_grad():
        first, second = model(batch)[0], model(other)[0]
    assert not torch.allclose(first, second)
    loss = model.compute_losses(batch, *model(batch))["loss"]
    loss.backward()
    for name in ("eeg", "gsr", "face"):
        grads = [p.grad for p in model.tokenizers.tokenizers[name].parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_cross_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="num_heads"):
        CrossAttentionFusionModule(SMALL, dim=10, num_heads=3)
