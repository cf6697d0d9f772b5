"""Run one configuration over every fold of a protocol, resumably.

Layout of a protocol run (``output_dir``)::

    run_info.json           configs (paths and text), overrides, protocol, seeds, provenance
    folds.csv               one row per (method, fold, seed): the model and the trivial baselines
    summary.md / .csv       mean ± std over folds
    fold-00-seed-3407/      the fold's logs, checkpoints, resolved config.yaml, split.json,
                            test_results.json (its presence marks the fold finished),
                            test_outputs.npz / .json (the test pass that reports are drawn from)

``folds.csv`` is rewritten atomically after every fold. On restart, finished folds are skipped
and a fold that was interrupted mid-training resumes from its ``last.ckpt``, so a killed run loses
at most the epoch in progress.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from datamodules.protocols import DEFAULT_SEED
from datamodules.table_cache import shared_tables
from mpcl.io import atomic_write_text
from mpcl.resume_paths import usable_last_checkpoint
from mpcl.runner.aggregate import FOLDS_FILE, METRIC_NAMES, comparison_table, per_fold_means
from mpcl.runner.progress import RunProgress
from mpcl.runner.provenance import provenance

RESULTS_FILE = "test_results.json"
RUN_INFO_FILE = "run_info.json"


def fold_dir_name(fold: int, seed: int) -> str:
    """Folder of one (fold, seed) inside a protocol run."""
    return f"fold-{fold:02d}-seed-{seed}"


@dataclass
class ProtocolRun:
    """One configuration run over the folds of a protocol.

    Args:
        configs: LightningCLI config files, stacked in order (like repeated ``--config``).
        protocol: The datamodule's protocol (``kfold``, ``loso``, ``random-window``, ...).
        output_dir: Folder of this run (see the module docstring).
        seeds: Seeds; each fold is trained once per seed.
        folds: Folds to run; default every fold of the protocol.
        overrides: Further command-line arguments for every fold (``--trainer.max_epochs=5``).
        isolate: Run every fold in a fresh Python process (``python -m mpcl``). Always on when
            the trainer runs several processes (``--trainer.devices=N`` with DDP): Lightning
            starts the other ranks by re-running the current command, which must then be the
            fold's ``mpcl fit``, not the runner.
        name: Row label of this configuration in tables; default the model class name.
    """

    configs: Sequence[str]
    protocol: str
    output_dir: Path
    seeds: Sequence[int] = (DEFAULT_SEED,)
    folds: Sequence[int] | None = None
    overrides: Sequence[str] = ()
    isolate: bool = False
    name: str | None = None
    _logger_class: str = field(default="", init=False, repr=False)
    _world_size: int = field(default=1, init=False, repr=False)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        missing = [c for c in self.configs if not Path(c).is_file()]
        if missing:
            raise FileNotFoundError(f"config files not found: {missing}")

    # ------------------------------------------------------------------ set-up
    def _base_args(self) -> list[str]:
        args: list[str] = []
        for config in self.configs:
            args += ["--config", str(config)]
        return [*args, *self.overrides, f"--data.init_args.protocol={self.protocol}"]

    def inspect(self) -> tuple[int, str, str]:
        """Number of folds, model class name and logger class of the configuration."""
        from mpcl.cli import build_cli

        cli = build_cli(self._base_args(), run=False)
        self._world_size = int(cli.trainer.world_size)
        datamodule = cli.datamodule
        logger = cli.config.get("trainer", {}).get("logger")
        # A jsonargparse Namespace (or a dict); a list of loggers or a bool has no single class.
        logger_class = logger.get("class_path", "") if hasattr(logger, "get") else ""
        return int(datamodule.fold_count), type(cli.model).__name__, str(logger_class)

    def _check_run_info(self, info: dict[str, Any]) -> None:
        path = self.output_dir / RUN_INFO_FILE
        if not path.exists():
            atomic_write_text(path, json.dumps(info, indent=2) + "\n")
            return
        previous = json.loads(path.read_text())
        keys = ("config_texts", "overrides", "protocol")
        changed = [k for k in keys if previous.get(k) != info.get(k)]
        if "seeds" in previous and sorted(previous["seeds"]) != sorted(info["seeds"]):
            # One seed set per folder: the summary's header names the folder's seeds.
            raise RuntimeError(
                f"{path}: this folder holds a run with seeds {previous['seeds']}, not "
                f"{info['seeds']}; use another --output folder for other seeds"
            )
        if changed:
            raise RuntimeError(
                f"{path}: this folder holds a run with different {changed}; results would be "
                "mixed. Use another --output folder (or delete this one)."
            )

    @property
    def _uses_wandb(self) -> bool:
        return self._logger_class.endswith("WandbLogger")

    @property
    def wandb_group(self) -> str:
        """W&B group of this protocol run's folds: its folder and the folder above.

        ``runs/protocol/kfold/synthetic-mlp`` gives ``kfold-synthetic-mlp`` and
        ``runs/ablations/synthetic-kfold/no_prd`` gives ``synthetic-kfold-no_prd``, so runs of one
        configuration under different protocols or data sets land in different groups.
        """
        parts = self.output_dir.resolve().parts[-2:]
        return "-".join(parts)

    # ------------------------------------------------------------------ folds
    def _fold_args(self, fold: int, seed: int, fold_dir: Path) -> list[str]:
        args = [
            "fit",
            *self._base_args(),
            f"--data.init_args.fold={fold}",
            f"--data.init_args.split_file={fold_dir / 'split.json'}",
            f"--seed_everything={seed}",
            "--test_after_fit=true",
            f"--trainer.default_root_dir={fold_dir}",
            f"--trainer.logger.init_args.save_dir={fold_dir}",
            f"--results.output_dir={fold_dir}",
            f"--test_outputs.output_dir={fold_dir}",
            "--trainer.enable_progress_bar=false",
        ]
        if self._uses_wandb:
            # One W&B group per protocol run; fold and seed as tags.
            args += [
                f"--trainer.logger.init_args.group={self.wandb_group}",
                f"--trainer.logger.init_args.name={self.wandb_group}-{fold_dir.name}",
                f"--trainer.logger.init_args.job_type={self.protocol}",
                f"--trainer.logger.init_args.tags=[fold-{fold}, seed-{seed}, {self.protocol}]",
            ]
        # An unreadable last.ckpt is reported and set aside (never retried); see the function.
        resume, note = usable_last_checkpoint(fold_dir)
        if note:
            print(f"[mpcl-protocol] fold {fold} seed {seed}: {note}", file=sys.stderr, flush=True)
        if resume is not None:
            args.append(f"--ckpt_path={resume}")
        return args

    def _run_fold(self, fold: int, seed: int) -> dict[str, Any]:
        fold_dir = self.output_dir / fold_dir_name(fold, seed)
        fold_dir.mkdir(parents=True, exist_ok=True)
        args = self._fold_args(fold, seed, fold_dir)
        started = time.perf_counter()
        if self.isolate or self._world_size > 1:
            subprocess.run([sys.executable, "-m", "mpcl", *args], check=True)
        else:
            from mpcl.cli import build_cli

            try:
                build_cli(args)
            finally:
                if self._uses_wandb:
                    # WandbLogger attaches to a run that is still open in the process, so without
                    # this every later fold would log into this fold's run.
                    import wandb

                    wandb.finish()
        if not (fold_dir / RESULTS_FILE).exists():
            raise RuntimeError(f"fold {fold} seed {seed}: no {RESULTS_FILE} in {fold_dir}")
        return {"wall_s": time.perf_counter() - started}

    def _rows_of(self, fold: int, seed: int, model_name: str, extra: dict[str, Any]) -> list[dict]:
        payload = json.loads(
            (self.output_dir / fold_dir_name(fold, seed) / RESULTS_FILE).read_text()
        )
        rows = []
        for method, values in payload["results"].items():
            label = (self.name or method) if method == payload["model"] else method
            rows.append(
                {
                    "method": label,
                    "fold": fold,
                    "seed": seed,
                    "num_samples": payload.get("num_samples"),
                    **{m: values.get(m) for m in METRIC_NAMES},
                    **extra,
                }
            )
        return rows

    def run(self, log: Any = print) -> pd.DataFrame:
        """Run (or resume) every fold; returns the per-fold table and writes the summaries."""
        fold_count, model_name, self._logger_class = self.inspect()
        folds = list(self.folds) if self.folds is not None else list(range(fold_count))
        bad = [f for f in folds if not 0 <= f < fold_count]
        if bad:
            raise ValueError(f"folds {bad} out of range: protocol {self.protocol} has {fold_count}")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._check_run_info(
            {
                "configs": [str(c) for c in self.configs],
                "config_texts": [Path(c).read_text() for c in self.configs],
                "overrides": list(self.overrides),
                "protocol": self.protocol,
                "fold_count": fold_count,
                "seeds": list(self.seeds),
                "model": model_name,
                "provenance": provenance(),
            }
        )
        csv_path = self.output_dir / FOLDS_FILE
        frame = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
        done = set() if frame.empty else set(zip(frame["fold"], frame["seed"], strict=True))
        progress = RunProgress(len(folds) * len(self.seeds))
        # In-process folds read the data set once: every fold's datamodule reuses the table.
        with shared_tables():
            for fold in folds:
                for seed in self.seeds:
                    if (fold, seed) in done:
                        log(f"[mpcl-protocol] fold {fold} seed {seed}: finished earlier, skipped")
                        progress.skip()
                        continue
                    log(progress.begin(fold, seed))
                    frame = self._with_fold(fold, seed, fold_count, model_name, frame, log)
                    atomic_write_text(csv_path, frame.to_csv(index=False))
                    done.add((fold, seed))
                    progress.end()
        self.write_summary(frame)
        return frame

    def _with_fold(
        self,
        fold: int,
        seed: int,
        fold_count: int,
        model_name: str,
        frame: pd.DataFrame,
        log: Any,
    ) -> pd.DataFrame:
        """``frame`` plus the rows of (fold, seed), trained first unless its results exist."""
        fold_dir = self.output_dir / fold_dir_name(fold, seed)
        extra: dict[str, Any] = {"wall_s": float("nan")}
        if not (fold_dir / RESULTS_FILE).exists():
            log(f"[mpcl-protocol] fold {fold}/{fold_count - 1} seed {seed}: training")
            extra = self._run_fold(fold, seed)
        rows = pd.DataFrame(self._rows_of(fold, seed, model_name, extra))
        return rows if frame.empty else pd.concat([frame, rows], ignore_index=True)

    def write_summary(self, frame: pd.DataFrame) -> str:
        """Write ``summary.md`` and ``summary.csv``: the model and the baselines over folds."""
        methods = list(dict.fromkeys(frame["method"]))
        runs = {m: per_fold_means(frame, m) for m in methods}
        text, long_form = comparison_table(runs)
        folds = frame["fold"].nunique()
        header = f"Protocol `{self.protocol}`, {folds} folds, seeds {list(self.seeds)}\n\n"
        atomic_write_text(self.output_dir / "summary.md", header + text + "\n")
        atomic_write_text(self.output_dir / "summary.csv", long_form.to_csv(index=False))
        return header + text
