"""Measure one model in a process of its own: ``python -m benchmarks.worker JOB.json OUT.json``.

A fresh process per model keeps the measurements apart: the memory peak of one model cannot hide
in memory that an earlier model left to the allocator, and thread settings do not leak. The job
file holds the registry entry and the settings (see :func:`benchmarks.bench.job`); the result is
written as JSON, with a ``skipped`` note when the model cannot be built.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import traceback
import warnings
from typing import Any

import torch

from benchmarks.epoch import compare_epochs
from benchmarks.measure import (
    TrainStep,
    eval_throughput,
    exported_latency,
    fast_latency,
    flop_counts,
    latency,
    optimizer_and_scheduler,
    parameter_count,
    random_batches,
    train_throughput,
)
from benchmarks.registry import ModelEntry, build_model
from benchmarks.settings import BenchSettings
from benchmarks.timing import PeakMemory
from mpcl.io import atomic_write_text

#: Training steps inside the memory probe (the optimizer state appears at the first step).
MEMORY_STEPS = 2
#: Distinct random batches the throughput loops cycle through.
DISTINCT_BATCHES = 4


def measure(
    entry: ModelEntry, settings: BenchSettings, partial: str | None = None
) -> dict[str, Any]:
    """Every measurement of one model; see ``docs/benchmarks.md`` for what each means.

    ``partial``: a path where the results before the fast paths are written first.
    """
    device = torch.device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    datamodule = settings.datamodule()
    metadata = datamodule.metadata
    train_batches = random_batches(metadata, settings.batch_size, DISTINCT_BATCHES, device)
    eval_batches = random_batches(metadata, settings.eval_batch_size, DISTINCT_BATCHES, device, 1)
    single = random_batches(metadata, 1, 1, device, seed=2)[0]

    def build() -> Any:
        torch.manual_seed(settings.seed)
        return build_model(entry, metadata)

    result: dict[str, Any] = {"name": entry.name, "config": entry.config}
    memory = PeakMemory(device)
    memory.start()
    try:
        model = build().to(device)
    except Exception as error:  # a model that cannot be built skips one row, with the reason
        return {**result, "skipped": f"cannot build: {type(error).__name__}: {error}"}
    result["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
    result["params"] = parameter_count(model)
    optimizer, _ = optimizer_and_scheduler(model)
    if optimizer is not None:
        step = TrainStep(model, optimizer)
        model.train()
        for batch in train_batches[:MEMORY_STEPS]:
            step(batch)
        result["peak_memory_mib"] = memory.stop()
        result["flops"] = flop_counts(step, train_batches[0], model, single)
        result["train"] = train_throughput(
            step, train_batches, device, settings.steps, settings.warmup, settings.repeats
        )
    else:
        # Fitted in closed form from the whole training split: that fit is its "training".
        datamodule.setup("fit")
        model.fit_training_split(datamodule.split_rows("train"), datamodule)
        result["peak_memory_mib"] = memory.stop()
        result["note"] = "fitted in closed form: no training step or epoch to time"
        result["flops"] = flop_counts(None, train_batches[0], model, single)
    result["memory_method"] = memory.method
    result["eval"] = eval_throughput(
        model, eval_batches, device, settings.steps, settings.warmup, settings.repeats
    )
    if optimizer is not None and settings.epoch_repeats > 0:
        result["epoch"] = compare_epochs(build, datamodule, device, settings.epoch_repeats)
    result["latency"] = latency(model, single, device, settings.latency_calls, settings.warmup)
    if device.type == "cpu":
        result["exported_latency"] = _exported_latency(model, single, settings)
    if settings.fast_latency:
        if partial is not None:
            # Compilation can be slow: what is measured so far survives a timeout.
            _add_rates(result)
            atomic_write_text(partial, json.dumps(result, indent=2) + "\n")
        with tempfile.TemporaryDirectory() as workdir:
            result["fast_latency"] = fast_latency(
                model, single, device, settings.latency_calls, settings.warmup, workdir
            )
    _add_rates(result)
    return result


def _add_rates(result: dict[str, Any]) -> None:
    """Achieved FLOP/s next to each time: training step and fastest single-window path."""
    flops = result.get("flops", {})
    step_ms = result.get("train", {}).get("ms_per_step", {}).get("median")
    if "train_step" in flops and step_ms:
        result["train"]["flop_per_s"] = flops["train_step"] / (step_ms / 1e3)
    fast_ms = result.get("fast_latency", {}).get("ms", {}).get("median")
    if "window" in flops and fast_ms:
        result["fast_latency"]["flop_per_s"] = flops["window"] / (fast_ms / 1e3)
    eager_ms = result.get("latency", {}).get("ms", {}).get("median")
    if "window" in flops and eager_ms:
        result["latency"]["flop_per_s"] = flops["window"] / (eager_ms / 1e3)


def _exported_latency(model: Any, single: dict, settings: BenchSettings) -> dict[str, Any]:
    """:func:`exported_latency`, or the reason why the model cannot be exported."""
    try:
        with tempfile.TemporaryDirectory() as workdir:
            return exported_latency(model, single, settings.latency_calls, settings.warmup, workdir)
    except Exception as error:  # a model that cannot be traced keeps its other columns
        return {"skipped": f"{type(error).__name__}: {error}"}


def main(argv: list[str] | None = None) -> int:
    """Read the job, measure, write the result (a failure is written as a note, exit code 1)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m benchmarks.worker JOB.json OUT.json", file=sys.stderr)
        return 2
    job = json.loads(open(argv[0], encoding="utf-8").read())
    entry = ModelEntry(**job["entry"])
    settings = BenchSettings(**job["settings"])
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    status = 0
    try:
        result = measure(entry, settings, partial=argv[1])
    except Exception as error:
        traceback.print_exc()
        result = {"name": entry.name, "config": entry.config}
        result["skipped"] = f"failed: {type(error).__name__}: {error}"
        status = 1
    atomic_write_text(argv[1], json.dumps(result, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
