"""Speed of training every subject's model at once against training them one by one.

``python -m mpcl.multisubject.bench --config experiments/synthetic/mlp.yaml -- <overrides>``
times three ways of producing the same per-subject models on the same machine, in one process:

* ``many-subjects``: :class:`~mpcl.multisubject.run.ManySubjectsRun` (data once, all models
  stacked, checkpoints and results written);
* ``loop one-by-one``: a bare PyTorch loop per subject (data loaded once, no Lightning, the
  model's own optimizer and scheduler, validation every epoch, best state tested): the fastest
  honest sequential baseline;
* ``lightning one-by-one``: the project's protocol runner (``mpcl-protocol run``), one
  ``mpcl fit --test_after_fit`` per subject, as subject-dependent protocols are run otherwise.

Early stopping is switched off (``--trainer.callbacks=[]``) so that all three do the same work.
The two baselines can be timed on the first ``--baseline-folds`` subjects and scaled linearly to
all of them (folds are alike in cost); the table says when they were. Wall time and process CPU
time are both reported: on a shared machine wall time also counts waiting for the CPU. The
baseline loop's test KL per subject is compared with the stacked run's as a cross-check.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from datamodules.batches import InMemoryBatches
from mpcl.io import atomic_write_text
from mpcl.metrics import kl_divergence
from mpcl.models.base import EmotionDistributionModule
from mpcl.multisubject.data import SubjectSplit, build_subject_splits
from mpcl.multisubject.run import ManySubjectsRun
from mpcl.multisubject.trainer import FitSettings
from mpcl.runner.cli import split_overrides
from mpcl.runner.provenance import package_versions
from mpcl.runner.run import ProtocolRun


class Clock:
    """Wall and process CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


@torch.no_grad()
def _predict(model: EmotionDistributionModule, table: dict[str, torch.Tensor], size: int) -> Any:
    model.eval()
    modalities = model.metadata.modalities
    preds = [
        model({m: table[m][i : i + size] for m in modalities})[0]
        for i in range(0, len(table["target"]), size)
    ]
    return torch.cat(preds)


def train_one_subject(
    template: EmotionDistributionModule,
    subject: SubjectSplit,
    settings: FitSettings,
    rng_state: torch.Tensor,
) -> float:
    """A plain PyTorch loop for one subject's model; returns its test KL (best val state)."""
    model = copy.deepcopy(template)
    torch.set_rng_state(rng_state)  # every subject's run starts from one RNG state, as with a seed
    config = model.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config
    scheduler = (
        config.get("lr_scheduler", {}).get("scheduler") if isinstance(config, dict) else None
    )
    batches = InMemoryBatches(
        subject.tables["train"], settings.batch_size, shuffle=True, seed=settings.shuffle_seed
    )
    val, test = subject.tables["val"], subject.tables["test"]
    best, best_state = float("inf"), copy.deepcopy(model.state_dict())
    for epoch in range(settings.max_epochs):
        model.train()
        batches.set_epoch(epoch)
        for batch in batches:
            preds, aux = model(batch)
            loss = model.compute_losses(batch, preds, aux)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = float(
            kl_divergence(_predict(model, val, settings.eval_batch_size), val["target"]).mean()
        )
        if value < best:
            best, best_state = value, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    preds = _predict(model, test, settings.eval_batch_size)
    return float(kl_divergence(preds, test["target"]).mean())


def loop_one_by_one(run: ManySubjectsRun, folds: Sequence[int]) -> tuple[Clock, list[float]]:
    """Time the bare per-subject loop on ``folds`` (data preparation included)."""
    from mpcl.cli import build_cli

    with Clock() as clock:
        cli = build_cli(run._cli_args(run.seeds[0]), run=False)
        rng_state = torch.get_rng_state()
        settings = run.settings_of(cli)
        subjects = build_subject_splits(cli.datamodule, folds)
        kls = [train_one_subject(cli.model, s, settings, rng_state) for s in subjects]
    return clock, kls


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": list(load),
        "versions": package_versions(),
    }


def run_bench(
    configs: Sequence[str],
    protocol: str,
    output: Path,
    overrides: Sequence[str],
    baseline_folds: int | None,
    lightning: bool = True,
    max_group: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time the three ways; write ``bench.json`` and ``bench.md`` into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    # Fixed work: every way trains every model for max_epochs (no early stopping).
    overrides = [*overrides, "--trainer.callbacks=[]"]
    before = machine()
    run = ManySubjectsRun(
        configs, protocol, output / "many-subjects", overrides=overrides, max_group=max_group
    )
    with Clock() as many:
        frame = run.run(log=log)
    stacked_kl = (
        frame[frame["method"] == frame["method"].iloc[0]].set_index("fold")["kl"].sort_index()
    )
    total = len(stacked_kl)
    folds = list(range(total if baseline_folds is None else min(baseline_folds, total)))
    scale = total / len(folds)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        loop, loop_kl = loop_one_by_one(run, folds)
        rows = {
            "many-subjects": (many.wall, many.cpu, total),
            "loop one-by-one": (loop.wall * scale, loop.cpu * scale, len(folds)),
        }
        if lightning:
            runner = ProtocolRun(
                configs, protocol, output / "lightning", folds=folds, overrides=list(overrides)
            )
            with Clock() as light:
                runner.run(log=log)
            rows["lightning one-by-one"] = (light.wall * scale, light.cpu * scale, len(folds))
    finally:
        sys.argv = argv
    kl_gap = max(abs(stacked_kl.loc[f] - k) for f, k in zip(folds, loop_kl, strict=True))
    result = {
        "configs": list(configs),
        "overrides": list(overrides),
        "protocol": protocol,
        "max_group": max_group,
        "subjects": total,
        "machine_before": before,
        "machine_after": machine(),
        "timings": {
            name: {"wall_s": w, "cpu_s": c, "folds_timed": n, "scaled_to": total}
            for name, (w, c, n) in rows.items()
        },
        "max_test_kl_difference_loop_vs_stacked": kl_gap,
    }
    lines = [
        f"Many subjects at once: {total} subjects, protocol `{protocol}`, configs "
        f"{', '.join(configs)}, overrides `{' '.join(overrides)}`, max group {max_group}",
        "",
        "| way | folds timed | wall s (all subjects) | CPU s (all subjects) | speed-up wall | "
        "speed-up CPU |",
        "|---|---|---|---|---|---|",
    ]
    for name, (wall, cpu, timed) in rows.items():
        lines.append(
            f"| {name} | {timed} | {wall:.1f} | {cpu:.1f} | {wall / many.wall:.2f}x | "
            f"{cpu / many.cpu:.2f}x |"
        )
    lines += [
        "",
        f"Speed-up = time of the way / time of many-subjects. Baselines timed on {len(folds)} "
        f"folds are scaled by {scale:.2f}. Test KL, loop vs stacked: max difference "
        f"{kl_gap:.2e}.",
        f"Machine: {before['processor']}, {before['cpu_count']} CPUs, torch threads "
        f"{before['torch_threads']}, load average before {before['load_average_1_5_15']} and "
        f"after {result['machine_after']['load_average_1_5_15']}; torch "
        f"{before['versions'].get('torch')}, lightning {before['versions'].get('lightning')}.",
    ]
    atomic_write_text(output / "bench.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(output / "bench.md", "\n".join(lines) + "\n")
    log("\n".join(lines))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; arguments after ``--`` are LightningCLI overrides."""
    argv, overrides = split_overrides(None if argv is None else list(argv))
    parser = argparse.ArgumentParser(prog="python -m mpcl.multisubject.bench")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--protocol", default="random-window")
    parser.add_argument("--output", default="runs/many-subjects-bench")
    parser.add_argument(
        "--baseline-folds", type=int, help="time the baselines on this many subjects and scale"
    )
    parser.add_argument("--no-lightning", action="store_true", help="skip the runner baseline")
    parser.add_argument("--max-group", type=int, help="most models per vectorised call")
    args = parser.parse_args(argv)
    run_bench(
        args.config,
        args.protocol,
        Path(args.output),
        overrides,
        args.baseline_folds,
        lightning=not args.no_lightning,
        max_group=args.max_group,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
