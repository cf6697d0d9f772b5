"""Stacked models: each model's loss, gradient and memory update equal the model's own."""

from __future__ import annotations

import copy

import pytest
import torch

from datamodules.dmer import dmer_metadata
from mpcl.models import MLPModule, MPCLModule
from mpcl.multisubject.stacking import StackedModels

METADATA = dmer_metadata()


def _batches(models: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = {
        k: torch.randn(models, size, *shape, generator=generator)
        for k, shape in METADATA.modality_shapes.items()
    }
    batch["target"] = torch.softmax(torch.randn(models, size, 10, generator=generator), -1)
    return batch


def _perturbed(module, models: int) -> StackedModels:
    """S copies, each moved to its own state (so that a mix-up of models would show)."""
    stacked = StackedModels(module, models)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for value in stacked.tensors().values():
            if value.is_floating_point():
                value.add_(0.05 * torch.randn(value.shape, generator=generator))
    return stacked


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLPModule(METADATA, hidden_dims=[16, 8], dropout=0.0),
        lambda: MPCLModule(METADATA, hidden_dim=16, dropout=0.0, token_groups={"face": 3}),
        lambda: MPCLModule(METADATA, hidden_dim=16, dropout=0.0, ema_weighting="centered"),
        lambda: MPCLModule(METADATA, hidden_dim=16, dropout=0.0, prototype_update="learned"),
    ],
    ids=["mlp", "mpcl", "mpcl-centered", "mpcl-learned"],
)
def test_group_losses_gradients_and_memory_equal_each_models_own(make):
    torch.manual_seed(0)
    stacked = _perturbed(make(), 4).train()
    members = torch.tensor([3, 1])  # a subset, out of order
    batch = {k: v[:2] for k, v in _batches(2, 12).items()}
    before = stacked.snapshot()
    terms, preds = stacked.losses(batch, members)
    terms["loss"].sum().backward()
    for g, s in enumerate(members.tolist()):
        single = copy.deepcopy(stacked.module).train()
        single.load_state_dict({k: v[s] for k, v in before.items()}, strict=False)
        own = {k: v[g] for k, v in batch.items()}
        p, aux = single(own)
        losses = single.compute_losses(own, p, aux)
        losses["loss"].backward()
        for name in terms:
            assert terms[name][g].item() == pytest.approx(
                losses[name].item(), rel=1e-6, abs=1e-6
            ), name
        assert torch.allclose(preds[g], p.detach(), atol=1e-6)
        for name, param in single.named_parameters():
            assert torch.allclose(stacked.params[name].grad[s], param.grad, atol=1e-6), name
        for name, buffer in single.state_dict().items():
            if name in stacked.buffers:  # MPCL's EMA banks: written into the model's own slice
                assert torch.allclose(stacked.buffers[name][s], buffer, atol=1e-6), name
    for s in (0, 2):  # models outside the group: no gradient, memory untouched
        for name, value in stacked.params.items():
            assert not value.grad[s].any(), name
        for name, value in stacked.buffers.items():
            assert torch.equal(value[s], before[name][s]), name
    if stacked.buffers:
        bank = "net.prototypes.physiological.bank"
        assert not torch.equal(stacked.buffers[bank][3], before[bank][3])


def test_dropout_masks_equal_a_one_model_run_with_the_same_rng_state():
    torch.manual_seed(0)
    module = MLPModule(METADATA, hidden_dims=[16], dropout=0.5)
    stacked = StackedModels(module, 3).train()
    batch = _batches(3, 8)
    state = torch.get_rng_state()
    _, preds = stacked.losses(batch)
    for s in range(3):
        torch.set_rng_state(state)
        own = {k: v[s] for k, v in batch.items()}
        p, _ = module.train()(own)
        assert torch.allclose(preds[s], p, atol=1e-6)


def test_state_dict_and_predict():
    torch.manual_seed(0)
    stacked = _perturbed(MLPModule(METADATA, hidden_dims=[8], dropout=0.3), 2)
    single = copy.deepcopy(stacked.module).eval()
    single.load_state_dict(stacked.state_dict(1))
    batch = _batches(2, 5)
    preds = stacked.train(False).predict(batch)
    assert torch.allclose(preds[1], single({k: v[1] for k, v in batch.items()})[0], atol=1e-6)
    assert not torch.allclose(preds[0], preds[1])
