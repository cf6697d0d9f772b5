from __future__ import annotations

import pytest
import torch

from datamodules.metadata import DatasetMetadata
from mpcl.io import atomic_write_text, unused_path
from mpcl.losses import kl_divergence_loss


def test_kl_loss_matches_definition_and_handles_zero_targets():
    target = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    preds = torch.tensor([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])
    # row 1: 0.5 ln 2 + 0.5 ln 2 = ln 2; row 2: ln 2 -> mean ln 2
    loss = kl_divergence_loss(target, preds.log())
    torch.testing.assert_close(loss, torch.log(torch.tensor(2.0)))
    assert kl_divergence_loss(target, target.clamp_min(1e-30).log()).abs() < 1e-6


def test_kl_loss_shape_error():
    with pytest.raises(ValueError, match="shape"):
        kl_divergence_loss(torch.ones(2, 3) / 3, torch.zeros(2, 4))


def _meta(**overrides):
    base = dict(
        emotion_names=("a", "b"),
        valence_groups=(0, 1),
        modality_shapes={"eeg": (18, 5), "face": (768,)},
        physiological=("eeg",),
        behavioral=("face",),
        name="t",
    )
    base.update(overrides)
    return DatasetMetadata(**base)


def test_metadata_round_trip_and_restriction():
    meta = _meta()
    assert DatasetMetadata.coerce(meta.to_dict()) == meta
    assert meta.feature_dim("eeg") == 90
    assert meta.modalities == ("eeg", "face")
    phys = meta.restricted_to(["eeg"])
    assert phys.behavioral == () and "face" not in phys.modality_shapes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"valence_groups": (0,)}, "valence_groups"),
        ({"physiological": ("ppg",)}, "modality_shapes"),
        ({"behavioral": ("eeg",)}, "both branches"),
    ],
)
def test_metadata_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        _meta(**overrides)


def test_atomic_write_and_unused_path(tmp_path):
    target = tmp_path / "out" / "r.json"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    second = unused_path(target)
    assert second.name == "r-1.json"
    atomic_write_text(second, "two")
    assert unused_path(target).name == "r-2.json"
    assert target.read_text() == "one"
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
