"""Every experiment YAML parses (--print_config) and trains end to end (fast_dev_run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.synthetic import generate_synthetic_dmer
from datamodules.wesad.fixtures import generate_fake_wesad
from mpcl.cli import build_cli
from mpcl.models import MLPModule

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
# Overlays are stacked on a run config; they are not runs of their own.
OVERLAY_DIRS = {"logging", "ablations", "sweeps", "trainer", "preprocessing"}
OVERLAY_DIRS |= {"presets", "protocols"}  # model presets, evaluation protocols
RUN_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name not in OVERLAY_DIRS)
TINY_SYNTHETIC = [
    "--data.init_args.num_subjects=4",
    "--data.init_args.rows_per_clip=6",
    "--data.init_args.num_folds=2",
]


def _data_args(config: Path, tmp_path: Path) -> list[str]:
    """Point a run config at small local data."""
    data = yaml.safe_load(config.read_text())["data"]["class_path"]
    if data.endswith("SyntheticDMERDataModule"):
        return [*TINY_SYNTHETIC, f"--data.init_args.root={tmp_path / 'synthetic'}"]
    if data.endswith("DMERDataModule"):
        root = tmp_path / "dmer"
        paths = generate_synthetic_dmer(root, num_subjects=4, rows_per_clip=6, seed=1)
        subjects = [int(path.stem) for path in paths]
        return [
            f"--data.init_args.root={root}",
            f"--data.init_args.subjects={subjects}",
            "--data.init_args.num_folds=2",
        ]
    if data.endswith("WESADDataModule"):
        root = tmp_path / "wesad"
        subjects = list(generate_fake_wesad(root, ("S2", "S3", "S4"), seconds_per_condition=12.0))
        return [f"--data.init_args.root={root}", f"--data.init_args.subjects={subjects}"]
    pytest.skip(f"no small-data recipe for {data} in this test")
    return []


def test_run_configs_exist():
    names = {str(p.relative_to(EXPERIMENTS)) for p in RUN_CONFIGS}
    assert {"synthetic/mlp.yaml", "dmer/mlp.yaml"} <= names


@pytest.mark.parametrize("config", RUN_CONFIGS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_print_config(config, in_tmp_cwd, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(config.read_text())
    assert printed["model"]["class_path"] == written["model"]["class_path"]
    # metadata is linked from the datamodule, never configured by hand
    assert "metadata" not in printed["model"].get("init_args", {})


@pytest.mark.parametrize("run", ["synthetic/mlp.yaml", "synthetic/mpcl.yaml", "wesad/mpcl.yaml"])
def test_subject_standardize_overlay_stacks_on_run_configs(run, in_tmp_cwd, capsys):
    overlay = EXPERIMENTS / "preprocessing" / "subject_standardize.yaml"
    args = ["fit", "--config", str(EXPERIMENTS / run), "--config", str(overlay)]
    with pytest.raises(SystemExit):
        build_cli([*args, "--print_config"])
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["init_args"]["subject_standardize"] is True
    # the run's own data settings survive the overlay
    written = yaml.safe_load((EXPERIMENTS / run).read_text())["data"]
    assert data["class_path"] == written["class_path"]
    assert data["init_args"]["batch_size"] == written["init_args"]["batch_size"]


@pytest.mark.parametrize("config", RUN_CONFIGS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_fast_dev_run(config, in_tmp_cwd):
    args = ["fit", "--config", str(config), "--trainer.fast_dev_run=true"]
    cli = build_cli([*args, *_data_args(config, in_tmp_cwd)])
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1


def test_fit_then_test_reports_baselines_and_checkpoint_reloads(in_tmp_cwd, capsys):
    config = EXPERIMENTS / "synthetic" / "mlp.yaml"
    cli = build_cli(
        [
            "fit",
            "--config",
            str(config),
            *TINY_SYNTHETIC,
            f"--data.init_args.root={in_tmp_cwd / 'synthetic'}",
            "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false",
            "--test_after_fit=true",
        ]
    )
    out = capsys.readouterr().out
    assert "train-mean" in out and "uniform" in out and "MLPModule" in out

    log_dir = Path(cli.trainer.log_dir)
    assert (log_dir / "config.yaml").exists()
    results = json.loads((log_dir / "test_results.json").read_text())["results"]
    assert set(results) == {"MLPModule", "train-mean", "uniform"}
    for row in results.values():
        assert set(row) == {"chebyshev", "clark", "canberra", "kl", "cosine", "intersection"}

    best = cli.trainer.checkpoint_callback.best_model_path
    assert best and Path(best).exists()
    # Checkpoints hold plain data only: they load with torch.load(weights_only=True).
    torch.load(best, weights_only=True)

    saved = in_tmp_cwd / "final.ckpt"
    cli.trainer.save_checkpoint(saved)
    restored = MLPModule.load_from_checkpoint(saved).eval()
    trained = cli.model.eval()
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        expected, _ = trained(batch)
        got, _ = restored(batch)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(-1), torch.ones(len(got)))
    assert restored.metadata == trained.metadata
