"""The protocol runner: every fold, resumable, aggregated; comparison tables with paired tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mpcl.runner import ProtocolRun, comparison_table, read_folds
from mpcl.runner.cli import main as protocol_main

REPO = Path(__file__).resolve().parents[2]
MLP = str(REPO / "experiments" / "synthetic" / "mlp.yaml")
METRICS = ["chebyshev", "clark", "canberra", "kl", "cosine", "intersection"]


def tiny(root: Path) -> list[str]:
    return [
        "--data.init_args.num_subjects=4",
        "--data.init_args.rows_per_clip=5",
        f"--data.init_args.root={root}",
        "--trainer.max_epochs=1",
    ]


def test_kfold_run_writes_every_fold_and_resumes(in_tmp_cwd):
    data = in_tmp_cwd / "data"
    overrides = [*tiny(data), "--data.init_args.num_folds=3"]
    interrupted = ProtocolRun([MLP], "kfold", in_tmp_cwd / "a", overrides=overrides, folds=[0])
    interrupted.run()
    first = read_folds(in_tmp_cwd / "a")
    assert sorted(set(first["fold"])) == [0]
    fold0_results = in_tmp_cwd / "a" / "fold-00-seed-3407" / "test_results.json"
    stamp = fold0_results.stat().st_mtime_ns

    messages = []
    resumed = ProtocolRun([MLP], "kfold", in_tmp_cwd / "a", overrides=overrides)
    frame = resumed.run(log=messages.append)
    assert any("fold 0 seed 3407: finished earlier, skipped" in m for m in messages)
    assert fold0_results.stat().st_mtime_ns == stamp  # fold 0 was not trained again
    assert sorted(set(frame["fold"])) == [0, 1, 2]
    assert set(frame["method"]) == {"MLPModule", "train-mean", "uniform"}
    assert len(frame) == 9

    fresh = ProtocolRun([MLP], "kfold", in_tmp_cwd / "b", overrides=overrides).run()
    key = ["method", "fold", "seed"]
    a = frame.sort_values(key).reset_index(drop=True)[key + METRICS]
    b = fresh.sort_values(key).reset_index(drop=True)[key + METRICS]
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-8)
    assert (in_tmp_cwd / "a" / "summary.md").read_text().splitlines()[1:] == (
        in_tmp_cwd / "b" / "summary.md"
    ).read_text().splitlines()[1:]

    fold_dir = in_tmp_cwd / "a" / "fold-01-seed-3407"
    split = json.loads((fold_dir / "split.json").read_text())
    assert split["protocol"] == "kfold"
    assert list(fold_dir.glob("**/config.yaml"))
    info = json.loads((in_tmp_cwd / "a" / "run_info.json").read_text())
    assert info["protocol"] == "kfold" and info["fold_count"] == 3
    assert "torch" in info["provenance"]["packages"]


def test_every_test_row_scored_once_per_fold(in_tmp_cwd):
    frame = ProtocolRun(
        [MLP], "loso", in_tmp_cwd / "loso", overrides=tiny(in_tmp_cwd / "data"), folds=[0, 3]
    ).run()
    model = frame[frame["method"] == "MLPModule"]
    # 4 subjects x 32 clips x 5 rows: one held-out subject has 160 rows
    assert model["num_samples"].tolist() == [160, 160]


def test_the_folds_of_a_run_read_the_data_files_once(in_tmp_cwd, monkeypatch):
    import datamodules.dmer as dmer

    data = in_tmp_cwd / "data"
    overrides = tiny(data)
    ProtocolRun([MLP], "random-window", in_tmp_cwd / "warm", overrides=overrides, folds=[0]).run()
    reads = []
    real = dmer.load_dmer_file
    monkeypatch.setattr(
        dmer, "load_dmer_file", lambda path, *a: reads.append(path) or real(path, *a)
    )
    run = ProtocolRun([MLP], "random-window", in_tmp_cwd / "rw", overrides=overrides)
    frame = run.run()
    assert sorted(set(frame["fold"])) == [0, 1, 2, 3]  # one fold per subject
    assert len(reads) == len(set(reads)) == 4  # each subject's file once, not once per fold


def test_refuses_to_mix_different_configs(in_tmp_cwd):
    overrides = [*tiny(in_tmp_cwd / "data"), "--data.init_args.num_folds=2"]
    ProtocolRun([MLP], "kfold", in_tmp_cwd / "r", overrides=[*overrides], folds=[0]).run()
    with pytest.raises(RuntimeError, match="different"):
        ProtocolRun(
            [MLP],
            "kfold",
            in_tmp_cwd / "r",
            overrides=[*overrides, "--model.init_args.dropout=0.1"],
        ).run()


def _fake_folds(values: dict[str, list[float]]) -> dict[str, pd.DataFrame]:
    runs = {}
    for name, kls in values.items():
        frame = pd.DataFrame({m: np.asarray(kls) for m in METRICS})
        frame.index.name = "fold"
        runs[name] = frame
    return runs


def test_comparison_table_mean_std_and_wilcoxon():
    runs = _fake_folds(
        {"ref": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "worse": [0.2, 0.3, 0.5, 0.6, 0.8, 0.9]}
    )
    text, long_form = comparison_table(runs, reference="ref")
    row = long_form[(long_form.method == "ref") & (long_form.metric == "kl")].iloc[0]
    assert row["mean"] == pytest.approx(0.35)
    assert row["std"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], ddof=1))
    worse = long_form[(long_form.method == "worse") & (long_form.metric == "kl")].iloc[0]
    # all six differences have one sign: exact two-sided p = 2 / 2^6
    assert worse["p_value"] == pytest.approx(2 / 64)
    assert math.isnan(row["p_value"])
    assert "KL ↓" in text and "Cosine ↑" in text and "Wilcoxon" in text
    assert "0.3500 ± 0.1871" in text


def test_protocol_cli_and_compare(in_tmp_cwd, capsys):
    out = in_tmp_cwd / "cli-run"
    code = protocol_main(
        [
            "run",
            "--config",
            MLP,
            "--protocol",
            "kfold",
            "--output",
            str(out),
            "--folds",
            "0",
            "1",
            "--",
            *tiny(in_tmp_cwd / "data"),
            "--data.init_args.num_folds=2",
        ]
    )
    assert code == 0
    assert "Protocol `kfold`, 2 folds" in capsys.readouterr().out
    protocol_main(
        ["compare", str(out), "--reference", "train-mean", "--output", str(in_tmp_cwd / "cmp")]
    )
    table = (in_tmp_cwd / "cmp.md").read_text()
    assert "MLPModule" in table and "uniform" in table and "Wilcoxon" in table
