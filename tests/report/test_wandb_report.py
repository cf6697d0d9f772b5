"""With the W&B logger on, a tested run's figures and co-occurrence tables are logged (offline)."""

from __future__ import annotations

import json

import pytest
import wandb
from report_helpers import MPCL, REPO, tiny

from mpcl.cli import build_cli

WANDB = str(REPO / "experiments" / "logging" / "wandb.yaml")


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_tested_run_logs_report_figures_and_cooccurrence_tables(in_tmp_cwd, wandb_offline):
    args = [
        "fit",
        "--config",
        MPCL,
        "--config",
        WANDB,
        *tiny(in_tmp_cwd / "data"),
        "--trainer.max_epochs=1",
        "--test_after_fit=true",
        f"--trainer.logger.init_args.save_dir={in_tmp_cwd / 'runs'}",
        f"--results.output_dir={in_tmp_cwd / 'out'}",
        f"--test_outputs.output_dir={in_tmp_cwd / 'out'}",
    ]
    try:
        build_cli(args)
    finally:
        wandb.finish()
    report = in_tmp_cwd / "out" / "report" / "report.html"
    assert report.is_file()
    runs = sorted((in_tmp_cwd / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    images = {p.name.split("_")[0] for p in (media / "images" / "report").glob("*.png")}
    assert {"cooccurrence", "gates", "relations", "scores", "distributions"} <= images
    tables = sorted((media / "table" / "report" / "cooccurrence").glob("*.table.json"))
    names = {t.name.rsplit("_", 2)[0] for t in tables}
    assert {"test_predictions", "A-all_test_windows", "training_targets"} <= names
    table = json.loads(tables[0].read_text())
    assert table["columns"][0] == "emotion" and len(table["data"]) == 10
