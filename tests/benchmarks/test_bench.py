"""The benchmark runs end to end at tiny sizes and writes a well-formed report.

No timing asserts: the numbers of a shared test machine mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

from benchmarks.report import COLUMNS

REPO = Path(__file__).resolve().parents[2]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def test_quick_bench_writes_table_and_json(tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text(
        "models:\n  MLP: experiments/dmer/mlp.yaml\n"
        "  Missing: experiments/dmer/no_such_model.yaml\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.bench", "--quick", "--threads", "1",
            "--registry", str(registry), "--data-root", str(tmp_path / "data"),
            "--output-dir", str(out),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (markdown,) = out.glob("*-cpu.md")
    (json_path,) = out.glob("*-cpu.json")
    assert markdown.stem == json_path.stem
    text = markdown.read_text()
    assert text.strip() in done.stdout  # `make bench` prints the report it writes

    lines = text.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| Model |"))
    assert _cells(lines[header_at]) == list(COLUMNS)
    assert set(lines[header_at + 1].strip("|").split("|")) <= {"---", "---:"}
    mlp = _cells(lines[header_at + 2])
    assert mlp[0] == "MLP" and len(mlp) == len(COLUMNS)
    for title, cell in zip(COLUMNS[2:], mlp[2:], strict=True):
        assert _number(cell) > 0, (title, cell)
    assert "Missing (experiments/dmer/no_such_model.yaml): skipped" in text
    assert "MPCL single-window latency" in text and "not measured" in text  # no MPCL row

    report = json.loads(json_path.read_text())
    assert report["settings"]["device"] == "cpu" and report["settings"]["threads"] == 1
    assert report["machine"]["logical_cpus"] >= 1 and report["machine"]["versions"]["torch"]
    (result,) = [r for r in report["results"] if r["name"] == "MLP"]
    assert mlp[1] == f"{result['params'] / 1000:.1f} k"
    epoch = result["epoch"]
    assert epoch["overhead_wall"] == (
        epoch["lightning_wall_s"]["median"] / epoch["bare_wall_s"]["median"]
    )
    assert epoch["steps"] >= 1 and epoch["rows"] > 0
    assert result["latency"]["threads"] == 1
    assert len(result["latency"]["ms"]["values"]) == report["settings"]["latency_calls"]
    # the exported (frozen TorchScript) model was timed and predicts what the eager one does
    exported = result["exported_latency"]
    assert exported["threads"] == 1 and exported["format"] == "pt"
    assert len(exported["ms"]["values"]) == report["settings"]["latency_calls"]
    assert exported["max_abs_diff"] < 1e-5
    # the fast path (AOTInductor on the CPU) was built, checked against eager and timed
    fast = result["fast_latency"]
    assert fast["best"] == "aoti" and fast["modes"]["aoti"]["max_abs_diff"] < 1e-5
    assert len(fast["ms"]["values"]) == report["settings"]["latency_calls"]
    # FLOP accounting: the MLP's window is its three linear layers, 2 * sum(in * out), plus the
    # missing-indicator product [1, 4 modalities] x [4, 256]
    widths = [18 * 5 + 28 + 27 + 768, 256, 128, report["data"]["emotions"]]
    indicators = 2 * 4 * 256
    assert result["flops"]["window"] == 2 * sum(a * b for a, b in pairwise(widths)) + indicators
    assert result["flops"]["train_step"] > result["flops"]["window"]
    assert result["train"]["flop_per_s"] > 0 and fast["flop_per_s"] > 0
    assert result["peak_memory_mib"] > 0
