"""Where stacked and one-by-one training part ways on a device, and what determinism costs.

``python -m benchmarks.equality --device cuda --output runs/equality`` trains the subjects of a
small synthetic set (MLP and MPCL, early stopping off) under three settings of the device:

* ``default``: PyTorch's defaults (float32 matrix products in full precision, cuDNN free to
  pick algorithms, atomics-based scatter/index kernels allowed);
* ``tf32``: ``torch.backends.cuda.matmul.allow_tf32`` and ``cudnn.allow_tf32`` on (reduced-
  precision matrix products, what ``set_float32_matmul_precision("high")`` selects);
* ``deterministic``: ``--trainer.deterministic=true`` (``torch.use_deterministic_algorithms``,
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, cuDNN deterministic), TF32 off.

For each it runs the many-subjects engine twice (repeatable?) and the bare one-by-one loop of
:mod:`mpcl.multisubject.bench` once, and reports the largest per-subject test-KL differences
and the stacked run's wall time. Written to ``<output>/equality.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mpcl.io import atomic_write_text
from mpcl.multisubject.bench import loop_one_by_one
from mpcl.multisubject.run import ManySubjectsRun

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "MLP": ("experiments/synthetic/mlp.yaml", []),
    "MPCL": ("experiments/synthetic/mpcl.yaml", ["--model.init_args.hidden_dim=32"]),
}
SETTINGS = ("default", "tf32", "deterministic")


def _set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def _stacked_kl(run: ManySubjectsRun) -> tuple[dict[int, float], float]:
    started = time.perf_counter()
    frame = run.run(log=lambda _: None)
    seconds = time.perf_counter() - started
    model = frame[frame["method"] == frame["method"].iloc[0]]
    return {int(f): float(k) for f, k in zip(model["fold"], model["kl"], strict=True)}, seconds


def measure(model: str, setting: str, device: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Stacked twice and the bare loop once under ``setting``; the test-KL differences."""
    config, model_args = MODELS[model]
    accelerator = "gpu" if device == "cuda" else "cpu"
    overrides = [
        *model_args,
        f"--trainer.accelerator={accelerator}",
        "--trainer.devices=1",
        "--trainer.callbacks=[]",
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.deterministic={'true' if setting == 'deterministic' else 'false'}",
        f"--data.init_args.num_subjects={args.subjects}",
        f"--data.init_args.rows_per_clip={args.rows_per_clip}",
        f"--data.init_args.root={tmp / 'data'}",
    ]
    torch.use_deterministic_algorithms(False)  # the flag outlives a Trainer: start clean
    _set_tf32(setting == "tf32")
    runs = []
    for attempt in ("a", "b"):
        folder = tmp / f"{model}-{setting}-{attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        run = ManySubjectsRun([str(REPO / config)], "random-window", folder, overrides=overrides)
        runs.append((run, *_stacked_kl(run)))
    (run, first, seconds), (_, second, seconds_b) = runs
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        _, loop = loop_one_by_one(run, sorted(first))
    finally:
        sys.argv = argv
    _set_tf32(False)
    torch.use_deterministic_algorithms(False)
    folds = sorted(first)
    return {
        "model": model,
        "setting": setting,
        "stacked_repeat_max_abs": max(abs(first[f] - second[f]) for f in folds),
        "loop_vs_stacked_max_abs": max(abs(first[f] - k) for f, k in zip(folds, loop, strict=True)),
        "mean_test_kl": sum(first.values()) / len(first),
        "stacked_s": [seconds, seconds_b],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.equality")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--output", default="runs/equality")
    parser.add_argument("--models", default="MLP,MPCL")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--rows-per-clip", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    output = Path(args.output)
    tmp = output / "work"
    results: list[dict[str, Any]] = []
    lines = [
        f"Stacked vs one-by-one on {args.device} "
        f"({torch.cuda.get_device_name(0) if args.device == 'cuda' else 'CPU'}), torch "
        f"{torch.__version__}: {args.subjects} synthetic subjects x {args.rows_per_clip} rows "
        f"per clip, `random-window`, {args.epochs} epochs, no early stopping",
        "",
        "| model | setting | stacked run repeated: max abs test-KL difference | bare loop vs "
        "stacked: max abs test-KL difference | mean test KL | stacked run s (two runs) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for model in args.models.split(","):
        for setting in args.settings.split(","):
            print(f"[equality] {model} {setting} ...", file=sys.stderr, flush=True)
            r = measure(model, setting, args.device, args, tmp)
            results.append(r)
            lines.append(
                f"| {model} | {setting} | {r['stacked_repeat_max_abs']:.2e} | "
                f"{r['loop_vs_stacked_max_abs']:.2e} | {r['mean_test_kl']:.5f} | "
                f"{r['stacked_s'][0]:.1f}, {r['stacked_s'][1]:.1f} |"
            )
            # After every row: a run stopped part-way keeps what it measured.
            atomic_write_text(output / "equality.md", "\n".join(lines) + "\n")
            atomic_write_text(output / "equality.json", json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
