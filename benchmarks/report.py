"""The benchmark report: machine and versions, settings, the results table and the targets.

Written as Markdown (for people) and JSON (every repeat's value, for tools), atomically, to
``<output_dir>/<date>-<device>.md`` / ``.json``; an existing report of the same day and device is
kept and the new one gets a ``-1``, ``-2``... suffix.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import date
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch

from mpcl.io import atomic_write_text, unused_path

#: The speed targets the report checks (issues 7 and 21).
OVERHEAD_TARGET = 1.1
LATENCY_TARGET_MS = 2.0
HELO_STEP_RATIO_TARGET = 0.5
#: Fastest single-window path: compiled export on one CPU thread, CUDA graphs on a GPU (ms).
FAST_LATENCY_TARGET_MS = {"cpu": 0.5, "cuda": 0.3}
OVERHEAD_MODELS = ("MLP", "MPCL")

COLUMNS = (
    "Model",
    "Params",
    "Train (win/s)",
    "Train step (ms)",
    "Train step CPU (ms)",
    "GFLOP/step",
    "Train TFLOP/s",
    "Eval (win/s)",
    "Latency b=1 (ms)",
    "Latency b=1 exported (ms)",
    "Latency b=1 fast (ms)",
    "MFLOP/window",
    "Fast GFLOP/s",
    "Peak mem (MiB)",
    "Epoch Lightning (s)",
    "Epoch bare (s)",
    "Overhead (wall)",
    "Overhead (CPU)",
)


def _first_line(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def _git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' (uncommitted changes)' if dirty else ''}" if commit else "unknown"


def machine_info(repo: Path) -> dict[str, Any]:
    """CPU model and cores, memory, GPU, platform, library versions and the git commit."""
    mem_kib = _first_line("/proc/meminfo", "MemTotal")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": round(int(mem_kib.split()[0]) / 2**20, 1) if mem_kib else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "lightning": _version("lightning"),
            "torchmetrics": _version("torchmetrics"),
            "numpy": _version("numpy"),
        },
        "commit": _git_commit(repo),
    }
    return info


def _get(result: Mapping[str, Any], *keys: str) -> Any:
    node: Any = result
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _params(count: int | None) -> str:
    if count is None:
        return "-"
    if count >= 10**6:
        return f"{count / 10**6:.2f} M"
    if count >= 10**3:
        return f"{count / 10**3:.1f} k"
    return str(count)


def _scaled(value: float | None, unit: float, digits: int) -> str:
    return "-" if value is None else f"{value / unit:,.{digits}f}"


def _fast(result: Mapping[str, Any]) -> str:
    """The fastest single-window path's median and its mode, e.g. ``0.081 (aoti-graph)``."""
    ms = _get(result, "fast_latency", "ms", "median")
    return "-" if ms is None else f"{ms:,.3f} ({result['fast_latency']['best']})"


def table_rows(results: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One row of cells per measured model (skipped models are listed separately)."""
    rows = []
    for r in results:
        if "skipped" in r:
            continue
        rows.append(
            [
                r["name"],
                _params(r.get("params")),
                _fmt(_get(r, "train", "windows_per_s", "median"), 0),
                _fmt(_get(r, "train", "ms_per_step", "median"), 2),
                _fmt(_get(r, "train", "cpu_ms_per_step", "median"), 2),
                _scaled(_get(r, "flops", "train_step"), 1e9, 3),
                _scaled(_get(r, "train", "flop_per_s"), 1e12, 3),
                _fmt(_get(r, "eval", "windows_per_s", "median"), 0),
                _fmt(_get(r, "latency", "ms", "median"), 3),
                _fmt(_get(r, "exported_latency", "ms", "median"), 3),
                _fast(r),
                _scaled(_get(r, "flops", "window"), 1e6, 2),
                _scaled(_get(r, "fast_latency", "flop_per_s"), 1e9, 1),
                _fmt(r.get("peak_memory_mib"), 1),
                _fmt(_get(r, "epoch", "lightning_wall_s", "median"), 3),
                _fmt(_get(r, "epoch", "bare_wall_s", "median"), 3),
                _fmt(_get(r, "epoch", "overhead_wall"), 3),
                _fmt(_get(r, "epoch", "overhead_cpu"), 3),
            ]
        )
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; every column but the first is right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _by_name(results: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {r["name"].lower(): r for r in results if "skipped" not in r}


def targets(results: Sequence[Mapping[str, Any]], device: str = "cpu") -> list[dict[str, Any]]:
    """The speed targets, each with its measured value and ``passed`` (``None``: not measured)."""
    rows = _by_name(results)
    checks: list[dict[str, Any]] = []
    mpcl_ms = _get(rows.get("mpcl", {}), "train", "ms_per_step", "median")
    helo_ms = _get(rows.get("helo", {}), "train", "ms_per_step", "median")
    ratio = mpcl_ms / helo_ms if mpcl_ms is not None and helo_ms else None
    checks.append(
        {
            "target": f"MPCL training step <= {HELO_STEP_RATIO_TARGET} x HeLo's (batch 128)",
            "value": ratio,
            "detail": f"MPCL {_fmt(mpcl_ms, 2)} ms, HeLo {_fmt(helo_ms, 2)} ms",
            "passed": None if ratio is None else ratio <= HELO_STEP_RATIO_TARGET,
        }
    )
    for key, how in (("latency", "eager"), ("exported_latency", "exported, TorchScript")):
        latency = _get(rows.get("mpcl", {}), key, "ms", "median")
        checks.append(
            {
                "target": f"MPCL single-window latency < {LATENCY_TARGET_MS} ms "
                f"(one thread, {how})",
                "value": latency,
                "detail": f"{_fmt(latency, 3)} ms",
                "passed": None if latency is None else latency < LATENCY_TARGET_MS,
            }
        )
    fast = _get(rows.get("mpcl", {}), "fast_latency", "ms", "median")
    limit = FAST_LATENCY_TARGET_MS[device]
    how = "compiled export (AOTInductor), one CPU thread" if device == "cpu" else "CUDA"
    checks.append(
        {
            "target": f"MPCL single-window latency <= {limit} ms (fastest path: {how})",
            "value": fast,
            "detail": f"{_fmt(fast, 3)} ms"
            + (f" ({rows['mpcl']['fast_latency']['best']})" if fast is not None else ""),
            "passed": None if fast is None else fast <= limit,
        }
    )
    for name in OVERHEAD_MODELS:
        wall = _get(rows.get(name.lower(), {}), "epoch", "overhead_wall")
        cpu = _get(rows.get(name.lower(), {}), "epoch", "overhead_cpu")
        checks.append(
            {
                "target": f"{name} Lightning overhead <= {OVERHEAD_TARGET} (batch 128)",
                "value": wall,
                "detail": f"wall {_fmt(wall, 3)}, CPU time {_fmt(cpu, 3)}",
                "passed": None if wall is None else wall <= OVERHEAD_TARGET,
            }
        )
    return checks


def _verdict(passed: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[passed]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole report as Markdown."""
    machine, settings = report["machine"], report["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    data = report["data"]
    threads = settings["threads"] or machine["torch_threads"]
    lines = [
        f"# MPCL benchmark: {settings['device']}, {report['date']}",
        "",
        f"- Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs "
        f"({machine['usable_cpus']} usable), {machine['memory_gib']} GiB RAM, "
        f"GPU: {machine['gpu'] or 'none'}; {machine['platform']}",
        f"- Versions: {versions}; commit {machine['commit']}",
        f"- Settings: batch {settings['batch_size']} (eval {settings['eval_batch_size']}), "
        f"{settings['steps']} steps x {settings['repeats']} repeats after {settings['warmup']} "
        f"warm-up, latency {settings['latency_calls']} calls, {settings['epoch_repeats']} "
        f"Lightning/bare epoch pairs; torch threads {threads} (latency: 1); medians throughout",
        f"- Data: random DMER-shaped tensors ({data['shapes']}, {data['emotions']} emotions) for "
        f"throughput, latency and memory; synthetic DMER-format set ({data['subjects']} subjects, "
        f"{data['rows']} rows) for the epochs",
        f"- Load average (1 min) at start / end: {report['load_average']['start']:.2f} / "
        f"{report['load_average']['end']:.2f}",
        f"- Command: `{report['command']}`",
        "",
        markdown_table(COLUMNS, table_rows(report["results"])),
        "",
        "Targets:",
        "",
    ]
    for check in report["targets"]:
        lines.append(f"- {check['target']}: {check['detail']}: **{_verdict(check['passed'])}**")
    skipped = [r for r in report["results"] if "skipped" in r]
    notes = [r for r in report["results"] if "note" in r and "skipped" not in r]
    if skipped or notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {r['name']} ({r['config']}): skipped, {r['skipped']}" for r in skipped]
        lines += [f"- {r['name']}: {r['note']}" for r in notes]
    lines += ["", "Columns: see docs/benchmarks.md.", ""]
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``<date>-<device>.md`` and ``.json`` (never replacing an earlier report)."""
    stem = f"{report['date']}-{report['settings']['device']}"
    markdown = unused_path(Path(output_dir) / f"{stem}.md")
    json_path = markdown.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(markdown, render_markdown(report))
    return markdown, json_path


def today() -> str:
    """The date of the report, ``YYYY-MM-DD``."""
    return date.today().isoformat()
