"""Shared helpers of the baseline tests: small metadata, tables and a tiny synthetic datamodule."""

from __future__ import annotations

from pathlib import Path

import torch

from datamodules import SyntheticDMERDataModule
from datamodules.metadata import DatasetMetadata

SMALL = DatasetMetadata(
    emotion_names=("joy", "calm", "awe", "fear", "anger"),
    valence_groups=(0, 0, 0, 1, 1),
    modality_shapes={"eeg": (4, 3), "gsr": (6,), "face": (9,)},
    physiological=("eeg", "gsr"),
    behavioral=("face",),
    name="small",
)


def make_table(n: int, seed: int = 0, subjects: int = 3) -> dict[str, torch.Tensor]:
    """A batch dict of ``n`` random rows of :data:`SMALL` with random target distributions."""
    generator = torch.Generator().manual_seed(seed)
    table = {
        name: torch.randn(n, *shape, generator=generator)
        for name, shape in SMALL.modality_shapes.items()
    }
    logits = 2 * torch.randn(n, SMALL.num_emotions, generator=generator)
    table["target"] = torch.softmax(logits, dim=-1)
    table["subject"] = torch.randint(0, subjects, (n,), generator=generator) * 7 + 3
    table["trial"] = torch.randint(0, 4, (n,), generator=generator)
    table["index"] = torch.arange(n)
    return table


def tiny_synthetic(root: Path, protocol: str = "kfold") -> SyntheticDMERDataModule:
    """Four synthetic subjects, five rows per clip, set up."""
    datamodule = SyntheticDMERDataModule(
        num_subjects=4, rows_per_clip=5, root=str(root), protocol=protocol, num_folds=2
    )
    datamodule.setup()
    return datamodule


def assert_distributions(preds: torch.Tensor, rows: int, classes: int) -> None:
    """Rows of non-negative entries summing to one."""
    assert preds.shape == (rows, classes)
    assert bool((preds >= 0).all())
    torch.testing.assert_close(preds.sum(-1), torch.ones(rows), atol=1e-5, rtol=0)
