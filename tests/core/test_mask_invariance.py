"""Every model ignores the values of a masked modality: replacing them changes no output."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest
import torch

from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import present_key
from mpcl.baselines import (
    AAKNNModule,
    CrossAttentionFusionModule,
    HeLoModule,
    LateFusionModule,
    SABFGSModule,
    SubjectMeanModule,
    TrainMeanModule,
    UniformModule,
)
from mpcl.models import MLPModule, MPCLModule

META = DatasetMetadata(
    emotion_names=("joy", "calm", "awe", "fear", "anger", "sad"),
    valence_groups=(0, 0, 0, 1, 1, 1),
    modality_shapes={"eeg": (4, 3), "gsr": (6,), "ppg": (5,), "face": (12,), "body": (4,)},
    physiological=("eeg", "gsr", "ppg"),
    behavioral=("face", "body"),
    name="masks",
)
MODALITIES = META.modalities
ROWS = 48


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batch = {m: torch.randn(ROWS, *s, generator=generator) for m, s in META.modality_shapes.items()}
    batch["target"] = torch.softmax(2 * torch.randn(ROWS, 6, generator=generator), dim=-1)
    batch["subject"] = torch.arange(ROWS) % 3
    batch["trial"] = torch.arange(ROWS) % 4
    batch["index"] = torch.arange(ROWS)
    return batch


def _presence() -> torch.Tensor:
    """``[ROWS, M]``: complete rows, each single modality missing, each whole branch missing,
    every modality missing, and random patterns."""
    patterns = [torch.ones(5, dtype=torch.bool)]
    for j in range(5):
        row = torch.ones(5, dtype=torch.bool)
        row[j] = False
        patterns.append(row)
    patterns.append(torch.tensor([False, False, False, True, True]))  # behavioural only
    patterns.append(torch.tensor([True, True, True, False, False]))  # physiological only
    patterns.append(torch.zeros(5, dtype=torch.bool))
    generator = torch.Generator().manual_seed(5)
    random = torch.rand(ROWS - len(patterns), 5, generator=generator) < 0.5
    return torch.cat([torch.stack(patterns), random])


def _masked(batch: dict, fill: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    present = _presence()
    out = dict(batch)
    for j, name in enumerate(MODALITIES):
        shape = (ROWS,) + (1,) * (batch[name].dim() - 1)
        keep = present[:, j].view(shape)
        out[name] = torch.where(keep, batch[name], fill(batch[name]))
        out[present_key(name)] = present[:, j]
    return out


FILLS = {
    "zeros": torch.zeros_like,
    "noise": lambda x: torch.randn(x.shape, generator=torch.Generator().manual_seed(9)) * 5,
    "1e6": lambda x: torch.full_like(x, 1e6),
    "nan": lambda x: torch.full_like(x, float("nan")),
}


def _fit(model, train: dict) -> None:
    datamodule = types.SimpleNamespace(protocol="random-window")
    with torch.no_grad():
        model.fit_training_split(train, datamodule)


MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "mpcl": lambda: MPCLModule(META, hidden_dim=16, prototypes_per_emotion=2),
    "mpcl-anchor-all": lambda: MPCLModule(META, hidden_dim=16, fusion_anchor="all"),
    "mpcl-concat-noslots": lambda: MPCLModule(META, hidden_dim=16, fusion="concat"),
    "mpcl-no-slots": lambda: MPCLModule(META, hidden_dim=16, memory_slots=0, branch_readout=True),
    "mpcl-no-prototypes": lambda: MPCLModule(META, hidden_dim=16, prototypes="none"),
    "mlp": lambda: MLPModule(META, hidden_dims=[32]),
    "late-fusion": lambda: LateFusionModule(META, hidden_dims=[32]),
    "cross-attention": lambda: CrossAttentionFusionModule(META, dim=16, num_heads=2),
    "helo": lambda: HeLoModule(META, hidden_dim=16, head_dim=16, ffn_dim=16),
    "uniform": lambda: UniformModule(META),
    "train-mean": lambda: TrainMeanModule(META),
    "subject-mean": lambda: SubjectMeanModule(META),
    "knn": lambda: AAKNNModule(META, k=3),
    "sa-bfgs": lambda: SABFGSModule(META, max_iter=20),
}
#: Models whose prediction does not read the features at all.
CONSTANT = {"uniform", "train-mean", "subject-mean"}


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS[name]()
    if hasattr(model, "fit_training_split"):
        _fit(model, _masked(_batch(1), FILLS["zeros"]))
    return model.eval()


def _outputs(model, batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        preds, aux = model(batch)
    tensors = {k: v for k, v in aux.items() if isinstance(v, torch.Tensor)}
    return {"preds": preds, **tensors}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_masked_values_change_no_output(name: str) -> None:
    model = _build(name)
    batch = _batch()
    reference = _outputs(model, _masked(batch, FILLS["zeros"]))
    assert torch.isfinite(reference["preds"]).all()
    for fill_name, fill in FILLS.items():
        outputs = _outputs(model, _masked(batch, fill))
        assert outputs.keys() == reference.keys()
        for key, value in outputs.items():
            assert torch.equal(value, reference[key]), f"{name}: {key} changed with {fill_name}"


@pytest.mark.parametrize("name", sorted(set(MODELS) - CONSTANT))
def test_present_values_do_change_the_output(name: str) -> None:
    """The check above could pass by ignoring every input; it must not."""
    model = _build(name)
    batch = _masked(_batch(), FILLS["zeros"])
    reference = _outputs(model, batch)["preds"]
    changed = dict(batch)
    present = _presence()
    for j, modality in enumerate(MODALITIES):
        shape = (ROWS,) + (1,) * (batch[modality].dim() - 1)
        changed[modality] = torch.where(
            present[:, j].view(shape), batch[modality] + 3.0, batch[modality]
        )
    preds = _outputs(model, changed)["preds"]
    rows_with_data = present.any(dim=1)
    assert not torch.allclose(preds[rows_with_data], reference[rows_with_data])


@pytest.mark.parametrize("name", ["mpcl", "mpcl-anchor-all", "mlp", "cross-attention"])
def test_training_losses_and_memory_ignore_masked_values(name: str) -> None:
    """In training (dropout, EMA memory write, PRD, co-occurrence loss) masked values are inert."""
    results = []
    for fill in (FILLS["zeros"], FILLS["1e6"]):
        torch.manual_seed(0)
        model = MODELS[name]().train()
        batch = _masked(_batch(), fill)
        torch.manual_seed(1)
        preds, aux = model(batch)
        losses = model.compute_losses(batch, preds, aux)
        losses["loss"].backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        buffers = {k: b.clone() for k, b in model.named_buffers()}
        results.append((losses, grads, buffers))
    (loss_a, grad_a, buf_a), (loss_b, grad_b, buf_b) = results
    assert all(torch.equal(loss_a[k], loss_b[k]) for k in loss_a)
    assert torch.isfinite(loss_a["loss"])
    assert grad_a.keys() == grad_b.keys()
    assert all(torch.equal(grad_a[k], grad_b[k]) for k in grad_a)
    assert all(torch.equal(buf_a[k], buf_b[k]) for k in buf_a)


@pytest.mark.parametrize("name", ["mpcl", "mlp", "late-fusion", "cross-attention"])
def test_all_present_masks_equal_no_masks(name: str) -> None:
    """Presence columns that say "all there" give the unmasked model's outputs."""
    model = _build(name)
    batch = _batch()
    plain = _outputs(model, batch)["preds"]
    marked = dict(batch, **{present_key(m): torch.ones(ROWS, dtype=torch.bool) for m in MODALITIES})
    torch.testing.assert_close(_outputs(model, marked)["preds"], plain, rtol=1e-5, atol=1e-6)
