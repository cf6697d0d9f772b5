"""Epoch logging of the base module: sums on the device, logged once per epoch, sample-weighted."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger

from datamodules import SyntheticDMERDataModule
from mpcl.metrics import LDLMetrics
from mpcl.models import MLPModule
from mpcl.models.epoch_means import EpochMeans


def test_epoch_means_are_batch_size_weighted():
    means = EpochMeans()
    assert means.compute() == {}
    means.update({"a": torch.tensor(1.0), "b": torch.tensor(4.0)}, 3)
    means.update({"a": torch.tensor(3.0), "b": torch.tensor(0.0)}, 1)
    out = means.compute()
    assert out["a"].item() == pytest.approx((3 * 1.0 + 1 * 3.0) / 4)
    assert out["b"].item() == pytest.approx(3.0)
    doubled = means.compute(reduce_sum=lambda t: 2 * t)  # two identical processes
    assert doubled["a"].item() == pytest.approx(out["a"].item())
    with pytest.raises(ValueError, match="expected"):
        means.update({"a": torch.tensor(1.0)}, 1)
    means.reset()
    assert means.count == 0 and means.compute() == {}


def test_logged_epoch_values_are_means_over_every_sample(tmp_path):
    dm = SyntheticDMERDataModule(
        num_subjects=4,
        rows_per_clip=3,
        root=str(tmp_path / "data"),
        num_folds=2,
        val_fraction=0.2,
        batch_size=40,
        eval_batch_size=25,
    )
    torch.manual_seed(0)
    model = MLPModule(dm.metadata, hidden_dims=[16])
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=CSVLogger(tmp_path / "logs", name="t"),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    val = dm.split_rows("val")
    assert len(val["target"]) % 25 != 0  # a partial last batch: plain batch means would differ

    # Validation ran on the final weights: recompute it over all rows at once.
    model.eval()
    with torch.no_grad():
        preds, aux = model(val)
        losses = model.compute_losses(val, preds, aux)
    reference = LDLMetrics(prefix="val/")
    reference.update(preds, val["target"])
    logged = trainer.callback_metrics
    assert logged["val/loss_kl"].item() == pytest.approx(losses["kl"].item(), rel=1e-5)
    assert logged["val/loss"].item() == pytest.approx(losses["loss"].item(), rel=1e-5)
    for key, value in reference.compute().items():
        assert logged[key].item() == pytest.approx(value.item(), rel=1e-6), key

    # Every step logged (log_every_n_steps=1); the epoch value is their batch-size-weighted mean.
    frame = pd.read_csv(next((tmp_path / "logs").rglob("metrics.csv")))
    assert {"train/loss_step", "train/loss_epoch", "train/loss_kl_epoch", "train/kl"} <= set(
        frame.columns
    )
    sizes = [len(b["target"]) for b in dm.train_dataloader()]
    steps = frame.dropna(subset=["train/loss_step"])
    assert len(steps) == 2 * len(sizes)
    first_epoch = steps[steps["epoch"] == 0]["train/loss_step"].to_numpy()
    weighted = sum(v * n for v, n in zip(first_epoch, sizes, strict=True)) / sum(sizes)
    epoch_value = frame.dropna(subset=["train/loss_epoch"]).iloc[0]["train/loss_epoch"]
    assert math.isclose(epoch_value, weighted, rel_tol=1e-5)
