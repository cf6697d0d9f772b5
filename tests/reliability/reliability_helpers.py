"""Shared set-up of the reliability tests: tiny synthetic runs in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")
CONFIGS = {
    "mpcl": (REPO / "experiments/synthetic/mpcl.yaml", ["--model.init_args.hidden_dim=16"]),
    "mlp": (REPO / "experiments/synthetic/mlp.yaml", ["--model.init_args.hidden_dims=[16]"]),
}


def tiny_data(root: Path) -> list[str]:
    """4 subjects x 32 clips x 4 rows, 4 folds: a run of 4 epochs takes a few seconds."""
    return [
        "--data.init_args.num_subjects=4",
        "--data.init_args.num_folds=4",
        "--data.init_args.rows_per_clip=4",
        f"--data.init_args.root={root}",
    ]


def run_worker(fault: str, program: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``worker.py FAULT -- PROGRAM ARGS`` in a fresh interpreter (one thread, no W&B)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(WORKER), fault, "--", program, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fit_args(model: str, out: Path, data: Path, epochs: int = 4) -> list[str]:
    """``mpcl fit`` of a tiny model, logging, checkpointing and reporting under ``out``."""
    config, model_args = CONFIGS[model]
    return [
        "fit",
        "--config",
        str(config),
        *model_args,
        *tiny_data(data),
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--test_after_fit=true",
        f"--trainer.default_root_dir={out}",
        f"--trainer.logger.init_args.save_dir={out}",
        f"--results.output_dir={out}",
    ]


def results(out: Path) -> dict:
    """The run's ``test_results.json`` with the tested checkpoint reduced to its file name."""
    payload = json.loads((out / "test_results.json").read_text())
    payload["ckpt_path"] = Path(payload["ckpt_path"]).name
    return payload


def fold_table(run_dir: Path) -> pd.DataFrame:
    """``folds.csv`` without its timing column."""
    return pd.read_csv(run_dir / "folds.csv").drop(columns=["wall_s"])


def train_tiny_mlp(tmp: Path) -> tuple[Path, list[str]]:
    """Train a 1-epoch tiny MLP under ``tmp``: (its best checkpoint, its config arguments)."""
    from mpcl.cli import build_cli

    args = [
        "--config",
        str(REPO / "experiments/synthetic/mlp.yaml"),
        "--model.init_args.hidden_dims=[8]",
        *tiny_data(tmp / "data"),
    ]
    build_cli(
        [
            "fit",
            *args,
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp}",
            f"--trainer.logger.init_args.save_dir={tmp}",
        ]
    )
    return next(tmp.glob("**/best-*.ckpt")), args
