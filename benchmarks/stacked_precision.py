"""Speed and accuracy of the many-subjects engine in 32-bit, bf16-mixed and compiled variants.

``python -m benchmarks.stacked_precision --config experiments/synthetic/mpcl.yaml
--variants fp32,bf16,compile,bf16-compile --output runs/stacked-precision -- <overrides>``
trains every subject's model of a subject-dependent protocol once per variant (same config,
same seed, same folds, early stopping off so that every variant does the same epochs) and
reports, per variant: training wall time, the first epoch (compilation included) and the median
of the others, the projected time of ``--project-epochs`` epochs, the mean test KL over subjects
and its largest and mean per-subject difference to the 32-bit run. Written to
``<output>/precision.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mpcl.io import atomic_write_text
from mpcl.multisubject.run import RUN_INFO_FILE, ManySubjectsRun
from mpcl.runner.cli import split_overrides

#: Variant name -> (Lightning precision, torch.compile).
VARIANTS = {
    "fp32": ("32-true", False),
    "bf16": ("bf16-mixed", False),
    "compile": ("32-true", True),
    "bf16-compile": ("bf16-mixed", True),
}


def run_variant(
    name: str,
    configs: Sequence[str],
    protocol: str,
    output: Path,
    overrides: Sequence[str],
    max_group: int | None,
) -> dict[str, Any]:
    """Train one variant; its timings and per-fold test KL."""
    precision, compiled = VARIANTS[name]
    run = ManySubjectsRun(
        configs,
        protocol,
        output / name,
        overrides=[*overrides, "--trainer.callbacks=[]", f"--trainer.precision={precision}"],
        max_group=max_group,
        compile=compiled,
    )
    started = time.perf_counter()
    frame = run.run(log=lambda line: print(line, file=sys.stderr, flush=True))
    total = time.perf_counter() - started
    info = json.loads((output / name / RUN_INFO_FILE).read_text())
    (timing,) = info["timings"].values()
    model = frame[frame["method"] == frame["method"].iloc[0]]
    epochs = timing["epoch_s"]
    return {
        "precision": precision,
        "compile": compiled,
        "total_s": total,
        "train_s": timing["train_s"],
        "epochs": len(epochs),
        "first_epoch_s": epochs[0],
        "later_epoch_s": statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0],
        "test_kl": {int(f): float(k) for f, k in zip(model["fold"], model["kl"], strict=True)},
    }


def compare(results: dict[str, dict[str, Any]], project_epochs: int) -> None:
    """Add the projection and the test-KL differences to the 32-bit run, in place."""
    reference = results.get("fp32")
    for result in results.values():
        result["projected_s"] = result["first_epoch_s"] + result["later_epoch_s"] * (
            project_epochs - 1
        )
        kl = result["test_kl"]
        result["mean_test_kl"] = statistics.fmean(kl.values())
        if reference is not None:
            gaps = [kl[f] - reference["test_kl"][f] for f in kl]
            result["max_abs_kl_difference"] = max(abs(g) for g in gaps)
            result["mean_kl_difference"] = statistics.fmean(gaps)


def markdown(results: dict[str, dict[str, Any]], project_epochs: int, header: str) -> str:
    """The comparison table."""
    lines = [
        header,
        "",
        f"| variant | precision | compiled | epochs | train s | first epoch s | later epoch s "
        f"(median) | projected {project_epochs} epochs | mean test KL | test KL vs fp32: max "
        "abs / mean difference |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        gap = (
            f"{r['max_abs_kl_difference']:.2e} / {r['mean_kl_difference']:+.2e}"
            if "max_abs_kl_difference" in r
            else "-"
        )
        lines.append(
            f"| {name} | {r['precision']} | {r['compile']} | {r['epochs']} | {r['train_s']:.1f} "
            f"| {r['first_epoch_s']:.2f} | {r['later_epoch_s']:.3f} | "
            f"{r['projected_s'] / 60:.1f} min | {r['mean_test_kl']:.5f} | {gap} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; arguments after ``--`` are LightningCLI overrides."""
    argv, overrides = split_overrides(None if argv is None else list(argv))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stacked_precision")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--protocol", default="random-window")
    parser.add_argument("--output", default="runs/stacked-precision")
    parser.add_argument("--variants", default="fp32,bf16,compile,bf16-compile")
    parser.add_argument("--max-group", type=int)
    parser.add_argument("--project-epochs", type=int, default=300)
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown} (known: {list(VARIANTS)})")
    output = Path(args.output)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"[precision] {name} ...", file=sys.stderr, flush=True)
        results[name] = run_variant(
            name, args.config, args.protocol, output, overrides, args.max_group
        )
        compare(results, args.project_epochs)
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
        header = (
            f"Stacked engine precision / compile: configs {', '.join(args.config)}, protocol "
            f"`{args.protocol}`, overrides `{' '.join(overrides)}`; {device}; torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads"
        )
        text = markdown(results, args.project_epochs, header)
        # Written after every variant: a run stopped part-way keeps what it measured.
        atomic_write_text(output / "precision.md", text)
        atomic_write_text(output / "precision.json", json.dumps(results, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
