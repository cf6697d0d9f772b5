"""Fixtures: DMER-like and WESAD-like metadata, and random batches and targets shaped after them."""

from __future__ import annotations

import pytest
import torch

from datamodules.metadata import DatasetMetadata

DMER_EMOTIONS = (
    "inspired", "alert", "excited", "enthusiastic", "determined",
    "afraid", "upset", "nervous", "scared", "distressed",
)  # fmt: skip


def dmer_metadata(**extra) -> DatasetMetadata:
    return DatasetMetadata(
        emotion_names=DMER_EMOTIONS,
        valence_groups=(0,) * 5 + (1,) * 5,
        modality_shapes={"eeg": (18, 5), "gsr": (28,), "ppg": (27,), "face": (768,)},
        physiological=("eeg", "gsr", "ppg"),
        behavioral=("face",),
        name="dmer-like",
        extra=extra,
    )


def wesad_metadata() -> DatasetMetadata:
    physiological = {
        "chest_ecg": (12,), "chest_eda": (8,), "chest_emg": (10,), "chest_resp": (9,),
        "chest_temp": (4,), "wrist_bvp": (11,), "wrist_eda": (8,), "wrist_temp": (4,),
    }  # fmt: skip
    behavioral = {"chest_acc": (4, 3), "wrist_acc": (9,)}
    return DatasetMetadata(
        emotion_names=("active", "interested", "inspired", "nervous", "afraid", "stressed"),
        valence_groups=(0, 0, 0, 1, 1, 1),
        modality_shapes={**physiological, **behavioral},
        physiological=tuple(physiological),
        behavioral=tuple(behavioral),
        name="wesad-like",
    )


def single_modality_metadata() -> DatasetMetadata:
    return DatasetMetadata(
        emotion_names=("joy", "calm", "fear", "anger"),
        valence_groups=(0, 0, 1, 1),
        modality_shapes={"eeg": (6, 5), "face": (48,)},
        physiological=("eeg",),
        behavioral=("face",),
        name="single",
    )


def make_batch(metadata: DatasetMetadata, batch_size: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(batch_size, *shape, generator=generator)
        for name, shape in metadata.modality_shapes.items()
    }


def make_target(batch_size: int, num_emotions: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1000)
    return torch.softmax(torch.randn(batch_size, num_emotions, generator=generator), dim=-1)


@pytest.fixture
def dmer() -> DatasetMetadata:
    return dmer_metadata()


@pytest.fixture
def dmer_grouped() -> DatasetMetadata:
    """DMER-like metadata that declares the LBP-TOP layout (3 planes) of the face features."""
    return dmer_metadata(token_groups={"face": 3})


@pytest.fixture
def wesad() -> DatasetMetadata:
    return wesad_metadata()


@pytest.fixture
def single() -> DatasetMetadata:
    return single_modality_metadata()


@pytest.fixture(name="make_batch")
def make_batch_fixture():
    return make_batch


@pytest.fixture(name="make_target")
def make_target_fixture():
    return make_target
