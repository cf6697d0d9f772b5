from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpcl.nn.prototypes import NoPrototypes, PrototypeBank

REPO = Path(__file__).resolve().parents[2]


def tiny_bank(momentum: float = 0.9, update: str = "ema") -> PrototypeBank:
    bank = PrototypeBank(num_emotions=2, prototypes_per_emotion=3, dim=2, update=update,
                         momentum=momentum)  # fmt: skip
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    with torch.no_grad():
        bank.bank.copy_(torch.stack([prototypes, prototypes]))
    return bank


# Four pooled embeddings and their targets: by cosine, e1 and e3 are nearest to prototype 0,
# e2 and e4 to prototype 1, nobody to prototype 2 (in both emotions, whose banks are equal).
E1, E2, E3, E4 = (torch.tensor(v) for v in ([2.0, 0.5], [0.1, 3.0], [1.0, 0.2], [0.2, 1.0]))
EMBEDDINGS = torch.stack([E1, E2, E3, E4])
TARGET = torch.tensor([[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])


def test_ema_update_by_hand():
    bank = tiny_bank(momentum=0.9)
    before = bank.bank.clone()
    assignments = bank.assign(EMBEDDINGS)
    torch.testing.assert_close(assignments, torch.tensor([[0, 0], [1, 1], [0, 0], [1, 1]]))
    bank.update_memory(EMBEDDINGS, TARGET)
    # Target-weighted means of the embeddings assigned to each prototype.
    mean_00 = (0.75 * E1 + 0.25 * E3) / (0.75 + 0.25)
    mean_01 = (0.5 * E2 + 1.0 * E4) / (0.5 + 1.0)
    mean_10 = (0.25 * E1 + 0.75 * E3) / (0.25 + 0.75)
    mean_11 = (0.5 * E2 + 0.0 * E4) / 0.5  # e4 has probability 0 for emotion 1
    expected = before.clone()
    expected[0, 0] = 0.9 * before[0, 0] + 0.1 * mean_00
    expected[0, 1] = 0.9 * before[0, 1] + 0.1 * mean_01
    expected[1, 0] = 0.9 * before[1, 0] + 0.1 * mean_10
    expected[1, 1] = 0.9 * before[1, 1] + 0.1 * mean_11
    torch.testing.assert_close(bank.bank, expected)
    # Unassigned prototypes keep their value.
    torch.testing.assert_close(bank.bank[:, 2], before[:, 2])


def test_forward_updates_only_in_training_with_target_and_ema():
    # Tokens whose mean is the embedding: forward pools them to EMBEDDINGS.
    tokens = torch.stack([EMBEDDINGS + 0.3, EMBEDDINGS - 0.3], dim=1)
    reference = tiny_bank()
    reference.update_memory(EMBEDDINGS, TARGET)

    bank = tiny_bank()
    before = bank.bank.clone()
    out = bank.train()(tokens, TARGET)
    torch.testing.assert_close(bank.bank, reference.bank)
    # The forward reads the bank as it was before the write.
    torch.testing.assert_close(out.bank, before)
    assert out.emotions.shape == (4, 2, 2) and out.assignments.shape == (4, 2)

    for mode, target in (("eval", TARGET), ("train", None)):
        bank = tiny_bank()
        getattr(bank, mode)()(tokens, target)
        torch.testing.assert_close(bank.bank, before)

    learned = tiny_bank(update="learned")
    assert "bank" in dict(learned.named_parameters())
    assert "bank" not in dict(tiny_bank().named_parameters())
    assert "bank" in dict(tiny_bank().named_buffers())
    learned.train()(tokens, TARGET)
    torch.testing.assert_close(learned.bank.detach(), before)


def test_ema_readout_backward_survives_the_in_place_write():
    bank = PrototypeBank(3, 2, 8).train()
    tokens = torch.randn(5, 4, 8, requires_grad=True)
    out = bank(tokens, torch.softmax(torch.randn(5, 3), -1))
    out.emotions.sum().backward()  # would fail if the readout used the written buffer
    assert tokens.grad is not None and bank.readout.query.weight.grad.abs().sum() > 0


def test_bank_validation():
    with pytest.raises(ValueError, match="update"):
        PrototypeBank(2, 2, 4, update="sgd")
    with pytest.raises(ValueError, match="momentum"):
        PrototypeBank(2, 2, 4, momentum=1.0)
    with pytest.raises(ValueError, match=r"target must be \[B=4, C=2\]"):
        tiny_bank().update_memory(EMBEDDINGS, TARGET[:, :1])


def test_no_prototypes_broadcasts_pooled_vector():
    module = NoPrototypes(num_emotions=3, dim=4)
    tokens = torch.randn(2, 5, 4)
    out = module(tokens)
    assert out.emotions.shape == (2, 3, 4) and out.memory.shape == (2, 3, 1, 4)
    assert out.bank is None and out.assignments is None
    torch.testing.assert_close(out.pooled, tokens.mean(1))
    assert not any(isinstance(b, torch.Tensor) and b.ndim == 3 for b in module.buffers())


def test_centered_weighting_uses_the_excess_over_the_batch_mean():
    bank = PrototypeBank(2, 3, 2, momentum=0.9, weighting="centered")
    with torch.no_grad():
        bank.bank.copy_(tiny_bank().bank)
    before = bank.bank.clone()
    bank.update_memory(EMBEDDINGS, TARGET)
    # batch mean target (0.625, 0.375); excess: e1 (0.125, 0), e2 (0, 0.125), e3 (0, 0.375),
    # e4 (0.375, 0)
    expected = before.clone()
    expected[0, 0] = 0.9 * before[0, 0] + 0.1 * E1  # only e1 of {e1, e3} is above the mean
    expected[0, 1] = 0.9 * before[0, 1] + 0.1 * E4
    expected[1, 0] = 0.9 * before[1, 0] + 0.1 * E3
    expected[1, 1] = 0.9 * before[1, 1] + 0.1 * E2
    torch.testing.assert_close(bank.bank, expected)
    with pytest.raises(ValueError, match="weighting"):
        PrototypeBank(2, 3, 2, weighting="mean")


@pytest.mark.parametrize("weighting", ["target", "centered"])
def test_ddp_banks_identical_and_equal_to_union_update(tmp_path, weighting):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    script = Path(__file__).with_name("ddp_bank_worker.py")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), weighting],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for branch in ("physiological", "behavioral"):
        rank0, rank1 = ranks[0]["ddp"][branch], ranks[1]["ddp"][branch]
        union, shard, initial = (ranks[0][key][branch] for key in ("union", "shard", "initial"))
        torch.testing.assert_close(rank0, rank1, rtol=0, atol=1e-6)
        torch.testing.assert_close(rank0, union, rtol=0, atol=1e-6)
        # The test can fail: the memory moved, and a rank's own shard alone gives another bank.
        assert (union - initial).abs().max() > 1e-2
        assert (shard - union).abs().max() > 1e-3
