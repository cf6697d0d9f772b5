"""Fixtures of the inference tests: tiny trained checkpoints and a folder of files to predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import scipy.io

from datamodules.synthetic import generate_synthetic_dmer
from mpcl.cli import build_cli

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "mlp": (
        REPO / "experiments" / "synthetic" / "mlp.yaml",
        ["--model.init_args.hidden_dims=[16]"],
    ),
    "mpcl": (REPO / "experiments" / "synthetic" / "mpcl.yaml", ["--model.init_args.hidden_dim=16"]),
}


def data_args(root: Path) -> list[str]:
    """The tiny synthetic data set of these tests (3 subjects x 32 clips x 4 rows)."""
    return [
        "--data.init_args.num_subjects=3",
        "--data.init_args.rows_per_clip=4",
        "--data.init_args.num_folds=3",
        f"--data.init_args.root={root}",
    ]


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """Model name -> (best checkpoint, the config arguments it was trained with)."""
    tmp = tmp_path_factory.mktemp("trained")
    out = {}
    for name, (config, model_args) in CONFIGS.items():
        args = ["--config", str(config), *model_args, *data_args(tmp / "data")]
        build_cli(
            [
                "fit",
                *args,
                "--trainer.max_epochs=1",
                "--trainer.enable_progress_bar=false",
                f"--trainer.default_root_dir={tmp / name}",
                f"--trainer.logger.init_args.save_dir={tmp / name}",
            ]
        )
        out[name] = (next((tmp / name).glob("**/best-*.ckpt")), args)
    return out


@pytest.fixture(scope="session")
def predict_dir(tmp_path_factory) -> Path:
    """Files to predict: one full labelled file (id 7) and part of one without labels (id 42)."""
    source = tmp_path_factory.mktemp("source")
    generate_synthetic_dmer(source, num_subjects=2, rows_per_clip=3, seed=9)
    root = tmp_path_factory.mktemp("predict")
    shutil.copy(source / "1.mat", root / "7.mat")
    data = scipy.io.loadmat(source / "2.mat")
    scipy.io.savemat(root / "42.mat", {"feas": data["feas"][5:40], "vids": data["vids"][5:40]})
    return root
