"""Benchmark building blocks: registry, overhead ratio, memory probe, targets and table."""

from __future__ import annotations

import pytest
import torch

from benchmarks import epoch as epoch_module
from benchmarks.measure import TrainStep, optimizer_and_scheduler, random_batches
from benchmarks.registry import ModelEntry, build_model, load_registry, select
from benchmarks.report import markdown_table, render_markdown, table_rows, targets
from benchmarks.timing import Elapsed, PeakMemory
from datamodules.dmer import dmer_metadata


def test_registry_lists_named_models_first_then_discovers_the_rest(tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text(
        "models:\n  MPCL: experiments/dmer/mpcl.yaml\n  MLP: experiments/dmer/mlp.yaml\n"
        "discover:\n  - experiments/dmer/m*.yaml\n"
    )
    entries = load_registry(registry)
    # mlp.yaml and mpcl.yaml match the pattern but are listed already: no duplicates
    assert [e.name for e in entries] == ["MPCL", "MLP"]
    registry.write_text(
        "models:\n  MLP: experiments/dmer/mlp.yaml\ndiscover: [experiments/dmer/*.yaml]\n"
    )
    names = [e.name for e in load_registry(registry)]
    assert names[0] == "MLP" and "mpcl" in names and "mlp" not in names
    assert [e.name for e in select(entries, ["mlp"])] == ["MLP"]
    with pytest.raises(ValueError, match="not in the registry"):
        select(entries, ["nope"])
    registry.write_text("models: [experiments/dmer/mlp.yaml]\n")
    with pytest.raises(ValueError, match="must map a model name"):
        load_registry(registry)


def test_build_model_uses_the_run_config_settings():
    metadata = dmer_metadata()
    model = build_model(ModelEntry("MPCL", "experiments/dmer/mpcl.yaml"), metadata)
    optimizer, scheduler = optimizer_and_scheduler(model)
    # experiments/dmer/mpcl.yaml configures AdamW with lr 3e-4: the benchmark trains that
    assert type(optimizer).__name__ == "AdamW"
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert scheduler is not None
    batches = random_batches(metadata, 4, 2, torch.device("cpu"))
    assert batches[0]["eeg"].shape == (4, 18, 5) and batches[0]["face"].shape == (4, 768)
    before = [p.detach().clone() for p in model.parameters()]
    out = TrainStep(model, optimizer)(batches[0])
    assert set(out) >= {"loss", "kl", "preds"}
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_overhead_is_the_ratio_of_medians_of_interleaved_timed_pairs(monkeypatch):
    order: list[str] = []
    lightning = iter([9.0, 2.0, 4.0, 3.0])  # the first pair is the warm-up
    bare = iter([9.0, 1.0, 2.0, 3.0])

    def fake(side, values):
        def run(model, datamodule, device):
            order.append(side)
            value = next(values)
            return Elapsed(wall=value, cpu=value / 2)

        return run

    monkeypatch.setattr(epoch_module, "lightning_epoch", fake("L", lightning))
    monkeypatch.setattr(epoch_module, "bare_epoch", fake("B", bare))

    class Data:
        batch_size = 4

        def setup(self, stage):
            pass

        def split_rows(self, name):
            return {"target": torch.zeros(10, 2)}

    result = epoch_module.compare_epochs(lambda: None, Data(), torch.device("cpu"), repeats=3)
    assert order == ["L", "B"] * 4
    assert result["lightning_wall_s"]["values"] == [2.0, 4.0, 3.0]
    assert result["overhead_wall"] == pytest.approx(3.0 / 2.0)  # medians 3 and 2
    assert result["overhead_cpu"] == pytest.approx(1.5 / 1.0)
    assert result["steps"] == 3 and result["rows"] == 10


def test_peak_memory_sees_torch_allocations():
    probe = PeakMemory(torch.device("cpu"))
    probe.start()
    block = torch.ones(16 * 2**20)  # 64 MiB, written, so resident
    peak = probe.stop()
    del block
    assert peak >= 60, (peak, probe.method)


def _result(name, ms, latency=None, overhead=None, exported=None, **extra):
    result = {
        "name": name,
        "config": f"experiments/dmer/{name.lower()}.yaml",
        "params": 1234,
        "train": {"windows_per_s": {"median": 1000.0}, "ms_per_step": {"median": ms}},
        **extra,
    }
    if latency is not None:
        result["latency"] = {"ms": {"median": latency}}
    if exported is not None:
        result["exported_latency"] = {"ms": {"median": exported}}
    if overhead is not None:
        result["epoch"] = {"overhead_wall": overhead, "overhead_cpu": overhead}
    return result


def test_targets_compare_mpcl_with_helo_and_thresholds():
    results = [
        _result(
            "MPCL",
            40.0,
            latency=2.5,
            overhead=1.1,
            exported=0.9,
            fast_latency={"best": "aoti", "ms": {"median": 0.4}},
        ),
        _result("MLP", 5.0, overhead=1.3),
        _result("HeLo", 100.0),
    ]
    checks = {c["target"].split()[0] + c["target"].split()[1]: c for c in targets(results)}
    assert checks["MPCLtraining"]["value"] == pytest.approx(0.4)
    assert checks["MPCLtraining"]["passed"] is True
    eager, exported, fast = (c for c in targets(results) if "single-window" in c["target"])
    assert "eager" in eager["target"] and eager["passed"] is False
    assert "exported" in exported["target"] and exported["passed"] is True
    assert exported["value"] == 0.9
    # the fastest path: <= 0.5 ms on one CPU thread, <= 0.3 ms on CUDA
    assert "0.5 ms" in fast["target"] and fast["passed"] is True and "(aoti)" in fast["detail"]
    (on_gpu,) = (c for c in targets(results, "cuda") if "fastest" in c["target"])
    assert "0.3 ms" in on_gpu["target"] and on_gpu["passed"] is False
    assert checks["MLPLightning"]["passed"] is False  # 1.3 > 1.1
    assert checks["MPCLLightning"]["passed"] is True
    without_helo = targets(results[:2])
    assert without_helo[0]["passed"] is None and without_helo[0]["value"] is None


def test_table_lists_measured_models_and_notes_skipped_ones():
    results = [
        _result("MPCL", 40.0, latency=1.5, overhead=1.1),
        {"name": "Gone", "config": "experiments/dmer/gone.yaml", "skipped": "cannot build: X"},
    ]
    rows = table_rows(results)
    assert [r[0] for r in rows] == ["MPCL"]
    assert rows[0][1] == "1.2 k" and rows[0][2] == "1,000" and rows[0][3] == "40.00"
    assert rows[0][4] == "-"  # CPU time not given: a dash, not a zero
    table = markdown_table(["a", "b"], [["x", "1"]])
    assert table.splitlines() == ["| a | b |", "|---|---:|", "| x | 1 |"]
    report = {
        "date": "2026-01-01",
        "command": "python -m benchmarks.bench",
        "machine": {
            "cpu": "Test CPU",
            "logical_cpus": 2,
            "usable_cpus": 2,
            "memory_gib": 1.0,
            "gpu": None,
            "platform": "test",
            "torch_threads": 2,
            "versions": {"torch": "x"},
            "commit": "abc",
        },
        "settings": {
            "device": "cpu",
            "batch_size": 128,
            "eval_batch_size": 128,
            "steps": 1,
            "repeats": 1,
            "warmup": 0,
            "latency_calls": 1,
            "epoch_repeats": 1,
            "threads": 0,
        },
        "data": {"shapes": "eeg [18, 5]", "emotions": 10, "subjects": 1, "rows": 32},
        "load_average": {"start": 1.0, "end": 2.0},
        "results": results,
        "targets": targets(results),
    }
    text = render_markdown(report)
    assert "Test CPU, 2 logical CPUs" in text
    assert "- Gone (experiments/dmer/gone.yaml): skipped, cannot build: X" in text
