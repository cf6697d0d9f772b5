"""The closed-form baselines run through `mpcl fit --test_after_fit true` like any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mpcl.baselines import AAKNNModule
from mpcl.cli import build_cli

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "synthetic"
TINY = [
    "--data.init_args.num_subjects=4",
    "--data.init_args.rows_per_clip=5",
    "--data.init_args.num_folds=2",
    "--trainer.enable_progress_bar=false",
    "--test_after_fit=true",
]


def fit_and_test(name: str, tmp: Path, *extra: str):
    config = EXPERIMENTS / f"{name}.yaml"
    cli = build_cli(
        ["fit", "--config", str(config), *TINY, f"--data.init_args.root={tmp / 'data'}", *extra]
    )
    payload = json.loads((Path(cli.trainer.log_dir) / "test_results.json").read_text())
    return cli, payload


@pytest.mark.parametrize(
    ("name", "report_row"),
    [("trivial_uniform", "uniform"), ("trivial_train_mean", "train-mean")],
)
def test_pipeline_trivial_predictors_agree_with_the_report(name, report_row, in_tmp_cwd):
    _, payload = fit_and_test(name, in_tmp_cwd)
    results = payload["results"]
    model_row = results[payload["model"]]
    for metric, value in results[report_row].items():
        assert model_row[metric] == pytest.approx(value, rel=1e-5, abs=1e-7), metric


def test_subject_mean_fails_clearly_under_kfold(in_tmp_cwd):
    with pytest.raises(ValueError, match="subject-dependent"):
        fit_and_test("trivial_subject_mean", in_tmp_cwd, "--data.init_args.protocol=kfold")


def test_knn_checkpoint_reloads_with_its_bank(in_tmp_cwd):
    cli, payload = fit_and_test("aa_knn", in_tmp_cwd, "--model.init_args.k=3")
    assert payload["model"] == "AAKNNModule"
    assert payload["results"]["AAKNNModule"]["kl"] < payload["results"]["uniform"]["kl"]
    best = cli.trainer.checkpoint_callback.best_model_path
    restored = AAKNNModule.load_from_checkpoint(best).eval()
    assert len(restored.bank_features) == len(cli.datamodule.split_rows("train")["target"])
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(restored(batch)[0], cli.model(batch)[0])
