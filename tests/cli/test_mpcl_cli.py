"""MPCLModule through the CLI: loss terms logged, ablation overlays, checkpoint restore."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from mpcl.cli import build_cli
from mpcl.models import MPCLModule

REPO = Path(__file__).resolve().parents[2]
MPCL = REPO / "experiments" / "synthetic" / "mpcl.yaml"
ABLATIONS = REPO / "experiments" / "ablations"


def _fit(tmp: Path, *extra: str):
    return build_cli(
        [
            "fit",
            "--config",
            str(MPCL),
            *extra,
            "--data.init_args.num_subjects=4",
            "--data.init_args.rows_per_clip=4",
            "--data.init_args.num_folds=2",
            f"--data.init_args.root={tmp / 'synthetic'}",
            "--model.init_args.hidden_dim=32",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            "--test_after_fit=true",
        ]
    )


def _logged_columns(cli) -> set[str]:
    return set(pd.read_csv(Path(cli.trainer.log_dir) / "metrics.csv").columns)


def test_full_model_logs_every_loss_term_and_restores_from_checkpoint(in_tmp_cwd):
    cli = _fit(in_tmp_cwd)
    columns = _logged_columns(cli)
    # training terms are logged per step and per epoch (Lightning's _step / _epoch suffixes)
    terms = ("loss", "loss_kl", "loss_prd", "loss_co")
    assert {f"train/{t}_epoch" for t in terms} <= columns
    assert {f"val/{t}" for t in terms} <= columns
    first = json.loads((Path(cli.trainer.log_dir) / "test_results.json").read_text())
    best = cli.trainer.checkpoint_callback.best_model_path

    # `mpcl test` on the checkpoint rebuilds the composed model from the config and scores the
    # same rows identically.
    again = build_cli(
        [
            "test",
            "--config",
            str(MPCL),
            "--data.init_args.num_subjects=4",
            "--data.init_args.rows_per_clip=4",
            "--data.init_args.num_folds=2",
            f"--data.init_args.root={in_tmp_cwd / 'synthetic'}",
            "--model.init_args.hidden_dim=32",
            "--trainer.enable_progress_bar=false",
            f"--ckpt_path={best}",
        ]
    )
    second = json.loads((Path(again.trainer.log_dir) / "test_results.json").read_text())
    assert second["num_samples"] == first["num_samples"] > 0
    for metric, value in first["results"]["MPCLModule"].items():
        assert second["results"]["MPCLModule"][metric] == pytest.approx(value, abs=1e-9)

    # The checkpoint alone (weights_only) restores the module, prototype banks included.
    restored = MPCLModule.load_from_checkpoint(best, weights_only=True)
    banks = [k for k in restored.state_dict() if k.endswith("prototypes.physiological.bank")]
    assert banks
    state = torch.load(best, weights_only=True)["state_dict"]
    torch.testing.assert_close(restored.state_dict()[banks[0]], state[banks[0]])


@pytest.mark.parametrize(
    ("ablation", "absent_term", "absent_parameter"),
    [
        ("no_prd", "train/loss_prd_epoch", None),
        ("no_retrieval", "train/loss_co_epoch", "net.retrieval."),
        ("no_prototypes", "train/loss_prd_epoch", "prototypes.physiological.readout"),
    ],
)
def test_ablation_overlay_removes_term_and_parameters(
    in_tmp_cwd, ablation, absent_term, absent_parameter
):
    cli = _fit(in_tmp_cwd, "--config", str(ABLATIONS / f"{ablation}.yaml"))
    columns = _logged_columns(cli)
    assert "train/loss_kl_epoch" in columns
    assert absent_term not in columns
    names = [name for name, _ in cli.model.named_parameters()]
    if absent_parameter is not None:
        assert not any(absent_parameter in name for name in names)
    restored = MPCLModule.load_from_checkpoint(
        cli.trainer.checkpoint_callback.best_model_path, weights_only=True
    )
    assert [n for n, _ in restored.named_parameters()] == names


def test_eval_predictions_do_not_depend_on_the_target(in_tmp_cwd):
    cli = _fit(in_tmp_cwd)
    model = cli.model.eval()
    batch = next(iter(cli.datamodule.test_dataloader()))
    banks = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(".bank")}
    with torch.no_grad():
        preds, _ = model(batch)
        shuffled = {**batch, "target": batch["target"].flip(0)}
        preds_shuffled, _ = model(shuffled)
        without = {k: v for k, v in batch.items() if k != "target"}
        preds_without, _ = model(without)
    torch.testing.assert_close(preds, preds_shuffled)
    torch.testing.assert_close(preds, preds_without)
    for key, value in banks.items():
        torch.testing.assert_close(model.state_dict()[key], value)  # no memory write in eval
