"""The device-check scripts run end to end on the CPU (tiny sizes) and report what they claim."""

from __future__ import annotations

import json

import pytest

from benchmarks import equality, latency_modes, stacked_precision


def test_equality_reports_repeatable_stacked_runs_equal_to_the_loop(tmp_path):
    equality.main(
        [
            "--device", "cpu", "--models", "MLP", "--settings", "default,deterministic",
            "--subjects", "2", "--rows-per-clip", "2", "--epochs", "1",
            "--output", str(tmp_path),
        ]
    )  # fmt: skip
    rows = json.loads((tmp_path / "equality.json").read_text())
    assert [r["setting"] for r in rows] == ["default", "deterministic"]
    for row in rows:
        assert row["stacked_repeat_max_abs"] == 0.0  # the CPU repeats bit for bit
        assert row["loop_vs_stacked_max_abs"] < 1e-6
    text = (tmp_path / "equality.md").read_text()
    assert text.count("| MLP |") == 2


def test_stacked_precision_compares_bf16_with_32_bit(tmp_path, capsys):
    stacked_precision.main(
        [
            "--config", "experiments/synthetic/mlp.yaml", "--variants", "fp32,bf16",
            "--output", str(tmp_path), "--project-epochs", "10", "--",
            "--data.init_args.num_subjects=2", "--data.init_args.rows_per_clip=2",
            f"--data.init_args.root={tmp_path / 'data'}", "--trainer.max_epochs=2",
        ]
    )  # fmt: skip
    results = json.loads((tmp_path / "precision.json").read_text())
    assert results["fp32"]["max_abs_kl_difference"] == 0.0
    assert results["bf16"]["precision"] == "bf16-mixed"
    assert 0 < results["bf16"]["max_abs_kl_difference"] < 0.05
    for r in results.values():
        assert r["epochs"] == 2 and len(r["test_kl"]) == 2
        assert r["projected_s"] == r["first_epoch_s"] + 9 * r["later_epoch_s"]
    assert "| bf16 | bf16-mixed |" in capsys.readouterr().out


@pytest.mark.slow
def test_latency_modes_times_every_cpu_path_against_eager(tmp_path):
    latency_modes.main(
        ["--models", "MLP", "--calls", "5", "--warmup", "1", "--output", str(tmp_path)]
    )
    rows = json.loads((tmp_path / "latency.json").read_text())
    assert [r["path"] for r in rows] == ["eager", "torchscript", "aoti", "compile"]
    for row in rows:
        assert row["max_abs_diff"] < 1e-5 and row["cpu_ms"] > 0
