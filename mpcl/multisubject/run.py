"""One many-subjects run: a LightningCLI config -> all subjects' models trained at once -> results.

The configuration is parsed by the ``mpcl`` LightningCLI itself (same YAMLs, same overrides, same
seeding before the model is built), so every subject's model starts from the state a one-model
``mpcl fit`` of that fold would start from. The trainer settings that a one-model run would use
(epochs, gradient clipping, device) are read from the parsed trainer; settings this mode cannot
honour stop the run with an error that names them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping

from datamodules.protocols import DEFAULT_SEED
from mpcl.io import atomic_write_text
from mpcl.multisubject.data import build_subject_splits
from mpcl.multisubject.outputs import (
    fold_dir,
    fold_rows,
    lightning_checkpoint,
    save_checkpoint,
    subject_results,
    write_subject_results,
    write_tables,
)
from mpcl.multisubject.stopping import EarlyStoppingSettings
from mpcl.multisubject.trainer import PRECISIONS, FitSettings, ManySubjectsTrainer
from mpcl.runner.aggregate import FOLDS_FILE
from mpcl.runner.provenance import provenance

RUN_INFO_FILE = "run_info.json"


def _unsupported_trainer_settings(trainer: Any) -> list[str]:
    """Trainer options that change a one-model run in ways this mode does not reproduce."""
    problems = []
    checks = {
        "accumulate_grad_batches": (trainer.accumulate_grad_batches, 1),
        "check_val_every_n_epoch": (trainer.check_val_every_n_epoch, 1),
        "limit_train_batches": (trainer.limit_train_batches, 1.0),
        "limit_val_batches": (trainer.limit_val_batches, 1.0),
        "max_steps": (trainer.max_steps, -1),
        "world_size": (trainer.world_size, 1),
    }
    for name, (value, default) in checks.items():
        if value != default:
            problems.append(f"trainer.{name}={value} (expected {default})")
    if _precision(trainer) not in PRECISIONS:
        problems.append(f"trainer.precision={trainer.precision} (expected one of {PRECISIONS})")
    if sum(isinstance(c, EarlyStopping) for c in trainer.callbacks) > 1:
        problems.append("more than one EarlyStopping callback")
    return problems


def _precision(trainer: Any) -> str:
    """The trainer's precision in Lightning's spelling (``"32"`` -> ``"32-true"``)."""
    value = str(getattr(trainer, "precision", "32-true"))
    return {"32": "32-true", "bf16": "bf16-mixed"}.get(value, value)


@dataclass
class ManySubjectsRun:
    """Train every subject's model of a subject-dependent protocol at once, per seed.

    Args:
        configs: LightningCLI config files, stacked in order.
        protocol: ``random-window``, ``temporal`` or ``clip-holdout``.
        output_dir: Run folder (layout: :mod:`mpcl.multisubject.outputs`).
        seeds: Seeds; one stacked run per seed.
        folds: Folds (subject ranks) to train; default all.
        overrides: Further LightningCLI arguments (``--trainer.max_epochs=5``).
        max_group: Most models per vectorised call (bounds memory); ``None``: all.
        save_last: Also write every subject's final state as ``last.ckpt``.
        name: Row label of the model in the tables; default the model class name.
        compile: Run the vectorised forward and loss through ``torch.compile``.
    """

    configs: Sequence[str]
    protocol: str
    output_dir: Path
    seeds: Sequence[int] = (DEFAULT_SEED,)
    folds: Sequence[int] | None = None
    overrides: Sequence[str] = ()
    max_group: int | None = None
    save_last: bool = False
    name: str | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        missing = [c for c in self.configs if not Path(c).is_file()]
        if missing:
            raise FileNotFoundError(f"config files not found: {missing}")

    def _cli_args(self, seed: int) -> list[str]:
        args: list[str] = []
        for config in self.configs:
            args += ["--config", str(config)]
        return [
            *args,
            *self.overrides,
            f"--data.init_args.protocol={self.protocol}",
            f"--seed_everything={seed}",
            "--trainer.enable_progress_bar=false",
        ]

    def settings_of(self, cli: Any) -> FitSettings:
        """The loop settings of a parsed CLI (raises on options this mode cannot honour)."""
        trainer, data = cli.trainer, cli.datamodule
        problems = _unsupported_trainer_settings(trainer)
        if problems:
            raise NotImplementedError(
                "the many-subjects mode cannot reproduce: " + "; ".join(problems)
            )
        checkpoint = cli.config.get("checkpoint") or {}
        stoppers = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
        return FitSettings(
            max_epochs=int(trainer.max_epochs),
            batch_size=int(data.batch_size),
            eval_batch_size=int(data.eval_batch_size),
            shuffle_seed=int(data.shuffle_seed),
            monitor=str(checkpoint.get("monitor") or cli.model.monitor),
            mode=str(checkpoint.get("mode") or cli.model.mode),
            gradient_clip_val=trainer.gradient_clip_val or None,
            gradient_clip_algorithm=str(
                getattr(trainer.gradient_clip_algorithm, "value", trainer.gradient_clip_algorithm)
                or "norm"
            ),
            max_group=self.max_group,
            device=str(trainer.strategy.root_device),
            early_stopping=EarlyStoppingSettings.from_callback(stoppers[0]) if stoppers else None,
            precision=_precision(trainer),
            compile=self.compile,
        )

    def run(self, log: Callable[[str], None] = print) -> pd.DataFrame:
        """Train, test and write every seed's subjects; returns the ``folds.csv`` frame."""
        from mpcl.cli import build_cli

        # LightningCLI warns when sys.argv holds arguments besides the ones it is given.
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            return self._run(build_cli, log)
        finally:
            sys.argv = argv

    def _run(self, build_cli: Callable[..., Any], log: Callable[[str], None]) -> pd.DataFrame:
        if (self.output_dir / FOLDS_FILE).exists():
            raise FileExistsError(
                f"{self.output_dir / FOLDS_FILE}: this folder holds a finished run; use another "
                "--output folder (or delete this one)"
            )
        rows: list[dict[str, Any]] = []
        timings: dict[str, Any] = {}
        for seed in self.seeds:
            started = time.perf_counter()
            cli = build_cli(self._cli_args(seed), run=False)
            settings = self.settings_of(cli)
            model_name = type(cli.model).__name__
            subjects = build_subject_splits(cli.datamodule, self.folds)
            prepared = time.perf_counter()
            log(
                f"[many-subjects] seed {seed}: {len(subjects)} {model_name} models "
                f"({self.protocol}), data ready in {prepared - started:.1f} s"
            )
            data_key = type(cli.datamodule).__qualname__
            trainer = ManySubjectsTrainer(cli.model, subjects, settings, log=log)
            fit = trainer.fit()
            last = trainer.models.snapshot() if self.save_last else None
            trainer.use_best()
            test = trainer.evaluate("test")
            for s, subject in enumerate(subjects):
                directory = fold_dir(self.output_dir, subject.fold, seed)
                best = directory / "checkpoints" / f"best-{fit.best_epoch[s]:03d}.ckpt"
                save_checkpoint(
                    best,
                    lightning_checkpoint(
                        trainer.models.module,
                        trainer.models.state_dict(s),
                        fit.best_epoch[s],
                        fit.steps[s],
                        {data_key: subject.datamodule_state},
                    ),
                )
                results = subject_results(
                    model_name, {k: float(v[s]) for k, v in test.items()}, subject
                )
                write_subject_results(
                    directory, model_name, results, subject.num_rows("test"), best
                )
                rows += fold_rows(
                    results, model_name, self.name, subject, seed, {"best_epoch": fit.best_epoch[s]}
                )
            if last is not None:
                trainer.models.load_snapshot(last)
                for s, subject in enumerate(subjects):
                    save_checkpoint(
                        fold_dir(self.output_dir, subject.fold, seed) / "checkpoints" / "last.ckpt",
                        lightning_checkpoint(
                            trainer.models.module,
                            trainer.models.state_dict(s),
                            fit.history[-1]["epoch"],
                            fit.steps[s],
                            {data_key: subject.datamodule_state},
                        ),
                    )
            history = pd.DataFrame(fit.history).assign(seed=seed)
            atomic_write_text(
                self.output_dir / f"epochs-seed-{seed}.csv", history.to_csv(index=False)
            )
            timings[str(seed)] = {
                "data_s": prepared - started,
                "train_s": fit.train_seconds,
                "epoch_s": fit.epoch_seconds,
                "total_s": time.perf_counter() - started,
                "models": len(subjects),
            }
            log(
                f"[many-subjects] seed {seed}: trained {len(subjects)} models in "
                f"{fit.train_seconds:.1f} s (total {timings[str(seed)]['total_s']:.1f} s)"
            )
        frame = pd.DataFrame(rows)
        info = {
            "mode": "many-subjects",
            "configs": [str(c) for c in self.configs],
            "config_texts": [Path(c).read_text() for c in self.configs],
            "overrides": list(self.overrides),
            "protocol": self.protocol,
            "folds": sorted(set(frame["fold"].tolist())),
            "seeds": list(self.seeds),
            "max_group": self.max_group,
            "precision": settings.precision,
            "compile": self.compile,
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "timings": timings,
            "provenance": provenance(),
        }
        atomic_write_text(self.output_dir / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")
        summary = write_tables(self.output_dir, frame, self.protocol, self.seeds)
        log(f"\n{summary}\n\nResults: {self.output_dir}/summary.md")
        return frame
