"""Helpers of the many-subjects tests: run configs written per test."""

from __future__ import annotations

from pathlib import Path

import yaml

SUBJECTS = (1, 2, 5)


def write_config(
    path: Path,
    root: Path,
    model: dict,
    epochs: int = 4,
    patience: int | None = None,
    min_delta: float = 0.0,
    batch_size: int = 32,
    protocol: str = "random-window",
    gradient_clip_val: float | None = None,
    device: str = "cpu",
) -> Path:
    """A run config: ``model``, DMERDataModule on ``root``, optional early stopping.

    ``device`` is ``cpu`` or ``cuda`` (Lightning's accelerator ``gpu``); runs are deterministic.
    """
    trainer: dict = {
        "max_epochs": epochs,
        "accelerator": "gpu" if device == "cuda" else "cpu",
        "devices": 1,
        "deterministic": True,
    }
    if gradient_clip_val is not None:
        trainer["gradient_clip_val"] = gradient_clip_val
    if patience is not None:
        trainer["callbacks"] = [
            {
                "class_path": "lightning.pytorch.callbacks.EarlyStopping",
                "init_args": {
                    "monitor": "val/kl",
                    "mode": "min",
                    "patience": patience,
                    "min_delta": min_delta,
                },
            }
        ]
    config = {
        "seed_everything": 3407,
        "trainer": trainer,
        "model": model,
        "data": {
            "class_path": "datamodules.DMERDataModule",
            "init_args": {
                "root": str(root),
                "subjects": list(SUBJECTS),
                "protocol": protocol,
                "val_fraction": 0.15,
                "batch_size": batch_size,
            },
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


MLP = {
    "class_path": "mpcl.models.MLPModule",
    "init_args": {"hidden_dims": [32, 16], "dropout": 0.3},
}
MPCL = {
    "class_path": "mpcl.models.MPCLModule",
    "init_args": {"hidden_dim": 16, "dropout": 0.1, "token_groups": {"face": 3}},
}
