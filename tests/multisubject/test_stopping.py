"""Per-model early stopping decides exactly as Lightning's EarlyStopping does for one model."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from mpcl.multisubject.stopping import EarlyStoppingSettings, PerModelEarlyStopping

SEQUENCES = [
    [0.5, 0.4, 0.41, 0.42, 0.39, 0.40, 0.41, 0.41],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    [0.3, 0.2, math.nan, 0.1, 0.1, 0.1, 0.1, 0.1],
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2],
    [0.2, 0.3, 2.5, 0.1, 0.1, 0.1, 0.1, 0.1],
    [0.2, 0.19995, 0.1999, 0.19985, 0.1, 0.1, 0.1, 0.1],
]


def _lightning_stop_epochs(kwargs: dict) -> list[int | None]:
    out = []
    for values in SEQUENCES:
        callback = EarlyStopping(monitor="val/kl", **kwargs)
        stop = None
        for epoch, value in enumerate(values):
            should_stop, _ = callback._evaluate_stopping_criteria(torch.tensor(value))
            if should_stop:
                stop = epoch
                break
        out.append(stop)
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": 2},
        {"patience": 1, "mode": "max"},
        {"patience": 3, "min_delta": 1e-3},
        {"patience": 2, "stopping_threshold": 0.35, "divergence_threshold": 2.0},
        {"patience": 2, "check_finite": False},
    ],
)
def test_stop_epochs_match_lightning(kwargs):
    expected = _lightning_stop_epochs(kwargs)
    settings = EarlyStoppingSettings.from_callback(EarlyStopping(monitor="val/kl", **kwargs))
    state = PerModelEarlyStopping(settings, len(SEQUENCES))
    got: list[int | None] = [None] * len(SEQUENCES)
    values = torch.tensor(SEQUENCES, dtype=torch.float64)
    for epoch in range(values.shape[1]):
        for s in torch.nonzero(state.update(values[:, epoch])).flatten().tolist():
            got[s] = epoch
    assert got == expected
    assert any(e is not None for e in expected)  # the cases do exercise stopping


def test_check_on_train_epoch_end_is_refused():
    callback = EarlyStopping(monitor="val/kl", check_on_train_epoch_end=True)
    with pytest.raises(NotImplementedError, match="check_on_train_epoch_end"):
        EarlyStoppingSettings.from_callback(callback)
