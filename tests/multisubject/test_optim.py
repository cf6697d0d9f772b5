"""Stacked Adam: bit-identical to torch.optim.Adam / AdamW per model, also when models sit out."""

from __future__ import annotations

import pytest
import torch

from datamodules.dmer import dmer_metadata
from mpcl.models import MLPModule
from mpcl.multisubject.optim import LearningRateOracle, StackedAdam


@pytest.mark.parametrize(
    ("optimizer", "decoupled"), [(torch.optim.Adam, False), (torch.optim.AdamW, True)]
)
def test_stacked_adam_equals_one_optimizer_per_model(optimizer, decoupled):
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(4, 6, 5, generator=generator)
    singles = [torch.nn.Parameter(start[s].clone()) for s in range(4)]
    references = [optimizer([p], lr=3e-3, weight_decay=1e-2) for p in singles]
    stacked = start.clone().requires_grad_()
    adam = StackedAdam([stacked], 4, lr=3e-3, weight_decay=1e-2, decoupled=decoupled)
    for step in range(25):
        # Gradients over many magnitudes, and steps where some models have no batch.
        scale = 10.0 ** torch.randint(-9, 1, (4, 6, 5), generator=generator).float()
        grad = torch.randn(4, 6, 5, generator=generator) * scale
        active = torch.tensor([True, step % 2 == 0, step % 3 != 0, True])
        for s in range(4):
            if active[s]:
                singles[s].grad = grad[s].clone()
                references[s].step()
        stacked.grad = grad.clone()
        adam.step(None if bool(active.all()) else active)
        for s in range(4):
            assert torch.equal(stacked[s].detach(), singles[s].detach()), (step, s)
    assert adam.steps.tolist() == [float(references[s].state[singles[s]]["step"]) for s in range(4)]


def test_learning_rate_follows_the_models_scheduler():
    model = MLPModule(dmer_metadata(), hidden_dims=[8])
    oracle = LearningRateOracle(model)
    adam = oracle.build([torch.zeros(2, 3, requires_grad=True)], 2)
    assert (adam.lr, adam.weight_decay, adam.decoupled) == (1e-3, 1e-5, False)
    rates = [oracle.lr] + [oracle.end_epoch() for _ in range(3)]
    assert rates == pytest.approx([1e-3 * 0.99**e for e in range(4)], rel=1e-12)


def test_unsupported_optimizer_and_scheduler_are_named():
    sgd = MLPModule(
        dmer_metadata(), hidden_dims=[8], optimizer=lambda p: torch.optim.SGD(p, lr=0.1)
    )
    with pytest.raises(NotImplementedError, match="SGD"):
        LearningRateOracle(sgd)
    plateau = MLPModule(
        dmer_metadata(),
        hidden_dims=[8],
        scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o),
    )
    with pytest.raises(NotImplementedError, match="ReduceLROnPlateau"):
        LearningRateOracle(plateau)
