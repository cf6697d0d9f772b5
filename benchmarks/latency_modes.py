"""Single-window latency of every inference path of a model, side by side, in one process.

``python -m benchmarks.latency_modes --models MPCL,MLP --device cpu`` builds each registry model
(``benchmarks/models.yaml``) behind :class:`~mpcl.export.InferenceModel` and times one window
through: the eager model, the frozen TorchScript file of ``python -m mpcl.export`` (CPU), and
every fast path of :mod:`mpcl.fastpath` for the device. Wall and process-CPU milliseconds per
call (medians; on a shared CPU the CPU time is the robust one, wall time includes preemption),
one torch thread, each path checked against the eager prediction. Prints a Markdown table and
writes it with the raw numbers to ``--output`` (``latency.md`` / ``latency.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.registry import load_registry, select
from benchmarks.timing import synchronize
from mpcl.io import atomic_write_text


def time_calls(fn: Callable[[], Any], device: torch.device, calls: int, warmup: int) -> dict:
    """Median wall and CPU milliseconds of ``calls`` synchronised calls after ``warmup``."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        walls, cpus = [], []
        for _ in range(calls):
            synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            walls.append(1e3 * (time.perf_counter() - wall))
            cpus.append(1e3 * (time.process_time() - cpu))
    walls.sort()
    return {
        "wall_ms": statistics.median(walls),
        "wall_p90_ms": walls[int(0.9 * (len(walls) - 1))],
        "cpu_ms": statistics.median(cpus),
    }


def paths(wrapper: Any, inputs: tuple, device: torch.device, workdir: str) -> dict[str, Any]:
    """Name -> callable (or the error that stopped it) of every path for ``device``."""
    from mpcl.export import export_model, load_exported
    from mpcl.fastpath import FAST_MODES, fast_predictor

    built: dict[str, Any] = {"eager": (wrapper, 0.0)}
    if device.type == "cpu":
        started = time.perf_counter()
        try:
            program = load_exported(export_model(wrapper, f"{workdir}/model.pt"))
            built["torchscript"] = (program, time.perf_counter() - started)
        except Exception as error:  # a path that cannot be built is reported, not fatal
            built["torchscript"] = error
    for mode in FAST_MODES[device.type]:
        started = time.perf_counter()
        try:
            fast = fast_predictor(wrapper, inputs, mode, workdir=f"{workdir}/{mode}")
            built[mode] = (fast, time.perf_counter() - started)
        except Exception as error:  # reported in its row
            built[mode] = error
    return built


def measure(name: str, device: torch.device, calls: int, warmup: int) -> list[dict[str, Any]]:
    """Every path of registry model ``name``."""
    from benchmarks.registry import build_model
    from datamodules.synthetic import SyntheticDMERDataModule
    from mpcl.export import InferenceModel

    (entry,) = select(load_registry(), [name])
    metadata = SyntheticDMERDataModule(num_subjects=2, rows_per_clip=1, root="/none").metadata
    torch.manual_seed(0)
    wrapper = InferenceModel(build_model(entry, metadata).eval()).to(device)
    inputs = tuple(x.to(device) for x in wrapper.example_inputs(1, seed=2))
    with torch.inference_mode():
        reference = wrapper(*inputs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mpcl-latency-") as workdir:
        for path, built in paths(wrapper, inputs, device, workdir).items():
            row: dict[str, Any] = {"model": entry.name, "path": path}
            if isinstance(built, Exception):
                row["error"] = f"{type(built).__name__}: {str(built)[:200]}"
            else:
                fn, build_s = built
                row.update(time_calls(lambda f=fn: f(*inputs), device, calls, warmup))
                with torch.inference_mode():
                    row["max_abs_diff"] = (fn(*inputs) - reference).abs().max().item()
                row["build_s"] = build_s
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The table."""
    lines = [
        header,
        "",
        "| model | path | wall ms (median) | wall ms (p90) | CPU ms (median) | build s | "
        "max abs diff to eager |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['path']} | failed: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['path']} | {r['wall_ms']:.3f} | {r['wall_p90_ms']:.3f} | "
            f"{r['cpu_ms']:.3f} | {r['build_s']:.1f} | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_modes")
    parser.add_argument("--models", default="MPCL,MLP")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--output", default="runs/latency")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    rows = []
    for name in args.models.split(","):
        rows += measure(name.strip(), device, args.calls, args.warmup)
    load = " / ".join(f"{v:.2f}" for v in __import__("os").getloadavg())
    header = (
        f"Single-window latency, one thread, {args.calls} calls after {args.warmup}: "
        f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else 'CPU'}, torch "
        f"{torch.__version__}; load average 1/5/15 min at the end {load}"
    )
    text = markdown(rows, header)
    output = Path(args.output)
    atomic_write_text(output / "latency.md", text)
    atomic_write_text(output / "latency.json", json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
