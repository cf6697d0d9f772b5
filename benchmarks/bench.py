"""``make bench``: speed, memory and Lightning overhead of every registered model.

``python -m benchmarks.bench [--device cpu|cuda] [--models MPCL,MLP] [--quick]`` measures each
model of ``benchmarks/models.yaml`` in its own process (see :mod:`benchmarks.worker`), writes
``runs/bench/<date>-<device>.md`` and ``.json`` and prints the Markdown report. What each column
means is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from benchmarks.registry import (
    DEFAULT_REGISTRY,
    REPO,
    ModelEntry,
    load_registry,
    model_section,
    select,
)
from benchmarks.report import machine_info, render_markdown, targets, today, write_report
from benchmarks.settings import QUICK, BenchSettings
from datamodules.dmer import NUM_CLIPS

#: Seconds one model's worker may take before it is stopped and noted as skipped.
DEFAULT_TIMEOUT_S = 3600


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; every :class:`BenchSettings` field is an option."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", help="comma-separated registry names (default: all)")
    parser.add_argument("--registry", default=str(DEFAULT_REGISTRY), help="models YAML")
    parser.add_argument("--output-dir", default="runs/bench", help="where reports are written")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement"
    )
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per model")
    for field in fields(BenchSettings):
        if field.name == "device":
            continue
        kind = str if field.name == "data_root" else int
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None)
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> BenchSettings:
    """Defaults, then ``--quick`` sizes, then explicit options."""
    values: dict[str, Any] = {"device": args.device}
    if args.quick:
        values.update(QUICK)
    for field in fields(BenchSettings):
        given = getattr(args, field.name, None)
        if field.name != "device" and given is not None:
            values[field.name] = given
    return BenchSettings(**values)


def run_worker(entry: ModelEntry, settings: BenchSettings, timeout: int) -> dict[str, Any]:
    """Measure one model in a fresh Python process; failures come back as ``skipped`` notes."""
    try:
        model_section(entry)  # a missing or malformed config costs no process start
    except (OSError, ValueError) as error:
        return {**vars(entry), "skipped": str(error)}
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory(prefix="mpcl-bench-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"entry": vars(entry), "settings": settings.to_dict()}))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", str(job), str(out)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            if out.is_file():  # the measurements before the fast paths were written
                result = json.loads(out.read_text())
                result["note"] = f"fast paths stopped after the {timeout} s timeout"
                return result
            return {**vars(entry), "skipped": f"stopped after the {timeout} s timeout"}
        if out.is_file():
            return json.loads(out.read_text())
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {**vars(entry), "skipped": f"worker exited {done.returncode}: {' | '.join(tail)}"}


def _load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print it; exit 1 when no model could be measured."""
    args = parse_args(argv)
    settings = settings_from(args)
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("benchmarks: --device cuda, but torch sees no CUDA device", file=sys.stderr)
            return 2
    names = [n.strip() for n in args.models.split(",")] if args.models else None
    entries = select(load_registry(args.registry), names)
    datamodule = settings.datamodule()
    datamodule.prepare_data()  # generate the synthetic files once, before the workers read them
    load_start = _load_average()
    results = []
    for entry in entries:
        print(f"[bench] {entry.name} ({entry.config}) ...", file=sys.stderr, flush=True)
        result = run_worker(entry, settings, args.timeout)
        if "skipped" in result:
            print(f"[bench] {entry.name}: skipped, {result['skipped']}", file=sys.stderr)
        results.append(result)
    metadata = datamodule.metadata
    report = {
        "date": today(),
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.bench", *sys.argv[1:]])
        if argv is None
        else shlex.join(["python", "-m", "benchmarks.bench", *argv]),
        "machine": machine_info(REPO),
        "settings": settings.to_dict(),
        "data": {
            "shapes": ", ".join(f"{m} {list(s)}" for m, s in metadata.modality_shapes.items()),
            "emotions": metadata.num_emotions,
            "subjects": settings.num_subjects,
            "rows": settings.num_subjects * NUM_CLIPS * settings.rows_per_clip,
        },
        "load_average": {"start": load_start, "end": _load_average()},
        "results": results,
        "targets": targets(results, settings.device),
    }
    markdown, json_path = write_report(report, args.output_dir)
    print(render_markdown(report))
    print(f"Written: {markdown} and {json_path}", file=sys.stderr)
    return 0 if any("skipped" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
