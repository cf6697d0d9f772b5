r"""Robustness protocol: train each model once per fold, evaluate it under every condition.

Conditions (:func:`standard_conditions`): all modalities; each single modality removed;
physiological only; behavioural only; a fraction of windows each losing one random modality;
additive Gaussian noise on every modality at a few SNRs. Every condition is applied to the same
clean test rows of the fold (:func:`datamodules.modality_mask.apply_masking`, seeded per fold and
seed), and the trained model (the checkpoint the fold tested, best ``val/kl``) is reused for all
of them: nothing is retrained per condition and nothing is chosen on a test fold.

Layout of a robustness run (``output_dir``)::

    train/<model>/          an ordinary protocol run per model (resumable, see ProtocolRun)
    conditions.csv          one row per (model, condition, fold, seed): the six metrics
    robustness.md / .csv    mean ± std over folds per (condition, model), Wilcoxon vs MPCL
    degradation.png         each metric's mean over folds per condition and model
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import ModalityMasking, apply_masking
from datamodules.protocols import DEFAULT_SEED
from mpcl.io import atomic_write_text
from mpcl.metrics import LDL_METRICS
from mpcl.metrics.functional import LDL_METRIC_FUNCTIONS
from mpcl.runner.aggregate import METRIC_NAMES, paired_wilcoxon
from mpcl.runner.run import ProtocolRun, fold_dir_name

CONDITIONS_FILE = "conditions.csv"
#: Rows per forward pass when scoring a condition (bounds memory, not results).
EVAL_CHUNK = 4096


@dataclass(frozen=True)
class Condition:
    """A named test condition: what to take away from (or add to) the clean test rows."""

    name: str
    masking: ModalityMasking


def standard_conditions(
    metadata: DatasetMetadata,
    drop_rates: Sequence[float] = (0.1, 0.3, 0.5),
    snrs_db: Sequence[float] = (10.0, 0.0),
) -> list[Condition]:
    """The robustness conditions of a data set, in table order.

    Args:
        metadata: The data set (its modalities and branches).
        drop_rates: Fractions of windows that lose one random modality each.
        snrs_db: SNRs of the additive Gaussian noise put on every modality.
    """
    conditions = [Condition("all", ModalityMasking())]
    for name in metadata.modalities:
        conditions.append(Condition(f"no-{name}", ModalityMasking(drop=[name])))
    if metadata.physiological and metadata.behavioral:
        conditions.append(
            Condition("physiological-only", ModalityMasking(drop=list(metadata.behavioral)))
        )
        conditions.append(
            Condition("behavioral-only", ModalityMasking(drop=list(metadata.physiological)))
        )
    for rate in drop_rates:
        conditions.append(
            Condition(f"drop-{round(100 * rate)}%", ModalityMasking(drop_rate=float(rate)))
        )
    for snr in snrs_db:
        noise = {name: float(snr) for name in metadata.modalities}
        conditions.append(Condition(f"noise-{snr:g}dB", ModalityMasking(noise_snr_db=noise)))
    return conditions


def predict_rows(model: torch.nn.Module, rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """Predictions ``[N, C]`` of an evaluation-mode model for a whole table, in chunks."""
    count = len(rows["target"])
    parts = []
    with torch.no_grad():
        for start in range(0, count, EVAL_CHUNK):
            chunk = {k: v[start : start + EVAL_CHUNK] for k, v in rows.items()}
            parts.append(model(chunk)[0].double())
    return torch.cat(parts)


def score(preds: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """The six metrics, averaged over rows."""
    target = target.double()
    return {n: float(LDL_METRIC_FUNCTIONS[n](preds, target).mean()) for n in METRIC_NAMES}


def evaluate_conditions(
    model: torch.nn.Module,
    test: dict[str, torch.Tensor],
    metadata: DatasetMetadata,
    conditions: Sequence[Condition],
    seed: int,
) -> list[dict[str, Any]]:
    """One row of metrics per condition for a trained model and its fold's clean test rows."""
    rows = []
    for condition in conditions:
        masking = ModalityMasking(**{**condition.masking.to_dict(), "seed": seed})
        table = apply_masking(test, metadata.modalities, masking, "test")
        rows.append(
            {"condition": condition.name, **score(predict_rows(model, table), test["target"])}
        )
    return rows


def load_fold(fold_dir: Path) -> tuple[torch.nn.Module, Any]:
    """The model the fold tested (its best checkpoint) and the fold's datamodule, set up.

    The datamodule is rebuilt from the fold's resolved ``config.yaml``, so its split and
    standardisation are the ones the model was trained and tested with.
    """
    from mpcl.export import load_checkpoint_model

    configs = sorted(fold_dir.glob("**/config.yaml"), key=lambda p: p.stat().st_mtime)
    if not configs:
        raise FileNotFoundError(f"{fold_dir}: no config.yaml (was the fold trained?)")
    results = json.loads((fold_dir / "test_results.json").read_text())
    ckpt = results.get("ckpt_path")
    if not ckpt or not Path(ckpt).is_file():
        found = sorted(fold_dir.glob("**/checkpoints/best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"{fold_dir}: no best-*.ckpt to evaluate")
        ckpt = found[-1]
    datamodule = datamodule_from_config(configs[-1])
    datamodule.setup("test")
    model, _ = load_checkpoint_model(ckpt)
    return model.eval(), datamodule


def datamodule_from_config(path: Path) -> Any:
    """The datamodule of a resolved LightningCLI ``config.yaml`` (its ``data`` section)."""
    import importlib

    import yaml

    from datamodules.data_size import DataSize

    config = yaml.safe_load(Path(path).read_text())
    data = config.get("data") or {}
    if "class_path" not in data:
        raise ValueError(f"{path}: field 'data.class_path' missing; expected a resolved config")
    module_name, _, class_name = data["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    init = dict(data.get("init_args") or {})
    init["split_file"] = None
    if isinstance(init.get("masking"), dict):
        init["masking"] = ModalityMasking(**init["masking"])
    if isinstance(init.get("data_size"), dict):
        init["data_size"] = DataSize(**init["data_size"])
    return cls(**init)


@dataclass
class RobustnessRun:
    """Several model configurations over a protocol's folds, each tested under every condition.

    Args:
        models: Row label -> stacked LightningCLI config files of that model.
        protocol: The protocol (``kfold`` for the synthetic set's subject-independent results).
        output_dir: The run folder (see the module docstring).
        seeds: Training seeds.
        folds: Folds to run (default all).
        overrides: Extra arguments for every training fold (``--trainer.max_epochs=5``).
        reference: Row label the others are tested against (Wilcoxon over folds).
        drop_rates: Window drop rates of the random-missing conditions.
        snrs_db: Noise SNRs.
    """

    models: dict[str, list[str]]
    protocol: str
    output_dir: Path
    seeds: Sequence[int] = (DEFAULT_SEED,)
    folds: Sequence[int] | None = None
    overrides: Sequence[str] = ()
    reference: str = "mpcl"
    drop_rates: Sequence[float] = (0.1, 0.3, 0.5)
    snrs_db: Sequence[float] = (10.0, 0.0)

    def train(self, log: Callable[[str], Any] = print) -> dict[str, ProtocolRun]:
        """Train (or resume) every model over the folds: ordinary protocol runs."""
        runs = {}
        for name, configs in self.models.items():
            log(f"[robustness] training {name}")
            run = ProtocolRun(
                configs=configs,
                protocol=self.protocol,
                output_dir=Path(self.output_dir) / "train" / name,
                seeds=self.seeds,
                folds=self.folds,
                overrides=self.overrides,
                name=name,
            )
            run.run(log=log)
            runs[name] = run
        return runs

    def evaluate(
        self, runs: dict[str, ProtocolRun], log: Callable[[str], Any] = print
    ) -> pd.DataFrame:
        """Score every trained fold under every condition; cached rows are reused."""
        path = Path(self.output_dir) / CONDITIONS_FILE
        frame = pd.read_csv(path) if path.exists() else pd.DataFrame()
        done = set()
        if not frame.empty:
            done = set(zip(frame["model"], frame["fold"], frame["seed"], strict=True))
        for name, run in runs.items():
            folds = pd.read_csv(run.output_dir / "folds.csv")
            for fold, seed in sorted(set(zip(folds["fold"], folds["seed"], strict=True))):
                if (name, fold, seed) in done:
                    continue
                log(f"[robustness] {name} fold {fold} seed {seed}: evaluating conditions")
                model, datamodule = load_fold(run.output_dir / fold_dir_name(fold, seed))
                conditions = standard_conditions(datamodule.metadata, self.drop_rates, self.snrs_db)
                test = datamodule.split_rows("test")
                rows = evaluate_conditions(
                    model, test, datamodule.metadata, conditions, seed=1000 * int(fold) + int(seed)
                )
                new = pd.DataFrame([{"model": name, "fold": fold, "seed": seed, **r} for r in rows])
                frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
                atomic_write_text(path, frame.to_csv(index=False))
        return frame

    def run(self, log: Callable[[str], Any] = print) -> str:
        """Train, evaluate, and write the table and the figure; returns the table's text."""
        Path(self.output_dir).mkdir(parents=True, exist_ok=True)
        runs = self.train(log)
        frame = self.evaluate(runs, log)
        text, long_form = condition_table(frame, self.reference)
        header = (
            f"Robustness, protocol `{self.protocol}`, {frame['fold'].nunique()} folds, seeds "
            f"{list(self.seeds)}; mean ± std over folds (seeds averaged within a fold); p: "
            f"two-sided Wilcoxon signed-rank over folds against `{self.reference}`\n\n"
        )
        atomic_write_text(Path(self.output_dir) / "robustness.md", header + text + "\n")
        atomic_write_text(Path(self.output_dir) / "robustness.csv", long_form.to_csv(index=False))
        metric_figure(frame, "condition", Path(self.output_dir) / "degradation.png")
        return header + text


def condition_table(
    frame: pd.DataFrame, reference: str, group: str = "condition"
) -> tuple[str, pd.DataFrame]:
    """Markdown and long-form tables: mean ± std over folds per (group, model) and metric.

    Seeds are averaged within a fold first. Each cell of a non-reference model carries the
    two-sided Wilcoxon signed-rank p-value of its per-fold values against the reference's.
    """
    per_fold = {
        key: values.set_index("fold")[METRIC_NAMES]
        for key, values in frame.groupby([group, "model"], sort=False)[[*METRIC_NAMES, "fold"]]
        .apply(lambda g: g.groupby("fold")[METRIC_NAMES].mean().reset_index())
        .groupby(level=[0, 1], sort=False)
    }
    arrows = {m.name: ("↑" if m.higher_is_better else "↓") for m in LDL_METRICS}
    headers = [group, "model", *[f"{m.display} {arrows[m.name]}" for m in LDL_METRICS]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    long_rows = []
    for key in dict.fromkeys(frame[group]):
        ref = per_fold.get((key, reference))
        for model in dict.fromkeys(frame["model"]):
            values = per_fold.get((key, model))
            if values is None:
                continue
            cells = [str(key), model]
            for metric in METRIC_NAMES:
                mean = float(values[metric].mean())
                std = float(values[metric].std(ddof=1)) if len(values) > 1 else 0.0
                p = math.nan
                if ref is not None and model != reference:
                    p = paired_wilcoxon(values[metric], ref[metric])
                cell = f"{mean:.4f} ± {std:.4f}"
                if not math.isnan(p):
                    cell += f" (p={p:.3f})"
                cells.append(cell)
                long_rows.append(
                    {group: key, "model": model, "metric": metric, "mean": mean, "std": std,
                     "folds": len(values), "p_vs_reference": p}
                )  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), pd.DataFrame(long_rows)


def metric_figure(frame: pd.DataFrame, group: str, path: Path) -> None:
    """One panel per metric: mean over folds (± std as error bars) per ``group`` and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = list(dict.fromkeys(frame[group]))
    per_fold = frame.groupby([group, "model", "fold"], sort=False)[METRIC_NAMES].mean()
    stats = per_fold.groupby(level=[group, "model"], sort=False).agg(["mean", "std"])
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5), constrained_layout=True)
    for axis, metric in zip(axes.flat, LDL_METRICS, strict=True):
        for model in dict.fromkeys(frame["model"]):
            keys = [k for k in order if (k, model) in stats.index]
            means = [stats.loc[(k, model), (metric.name, "mean")] for k in keys]
            stds = [stats.loc[(k, model), (metric.name, "std")] for k in keys]
            positions = [order.index(k) for k in keys]
            axis.errorbar(positions, means, yerr=stds, marker="o", capsize=2, label=model)
        axis.set_xticks(range(len(order)), [str(k) for k in order], rotation=60, ha="right")
        arrow = "higher is better" if metric.higher_is_better else "lower is better"
        axis.set_title(f"{metric.display} ({arrow})")
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


@dataclass
class DataSizeRun:
    """The same models trained on less data: a table and a figure of each metric vs size.

    Subject-independent protocols shrink the number of training subjects
    (``data_size.train_subjects``), subject-dependent ones the fraction of training windows per
    clip (``data_size.window_fraction``); validation and test rows are those of the full fold.

    Args:
        models: Row label -> stacked config files.
        protocol: The protocol.
        output_dir: Run folder: ``train/<model>/size-<s>/`` protocol runs, ``datasize.md/.csv``,
            ``datasize.png``.
        sizes: Training subjects (subject-independent) or window fractions (subject-dependent);
            ``0`` stands for the full training part.
        seeds: Training seeds.
        folds: Folds to run (default all).
        overrides: Extra arguments for every fold.
        reference: Row label the others are tested against.
    """

    models: dict[str, list[str]]
    protocol: str
    output_dir: Path
    sizes: Sequence[float]
    seeds: Sequence[int] = (DEFAULT_SEED,)
    folds: Sequence[int] | None = None
    overrides: Sequence[str] = ()
    reference: str = "mpcl"

    def _size_args(self, size: float) -> tuple[str, list[str]]:
        from datamodules.protocols import SUBJECT_DEPENDENT

        if size == 0:
            return "all", []
        if self.protocol in SUBJECT_DEPENDENT:
            if not 0 < size <= 1:
                raise ValueError(f"window fractions must be in (0, 1], got {size}")
            arg = f"--data.init_args.data_size.window_fraction={size}"
            return f"{round(100 * size)}%", [arg]
        if size != int(size) or size < 1:
            raise ValueError(f"training-subject counts must be positive integers, got {size}")
        return f"{int(size)} subjects", [f"--data.init_args.data_size.train_subjects={int(size)}"]

    def run(self, log: Callable[[str], Any] = print) -> str:
        """Train every (model, size) over the folds; write the table and the figure."""
        frames = []
        for size in self.sizes:
            label, args = self._size_args(size)
            for name, configs in self.models.items():
                log(f"[datasize] {name}, {label}")
                slug = label.replace(" ", "-").replace("%", "pct")
                run = ProtocolRun(
                    configs=configs,
                    protocol=self.protocol,
                    output_dir=Path(self.output_dir) / "train" / name / f"size-{slug}",
                    seeds=self.seeds,
                    folds=self.folds,
                    overrides=[*self.overrides, *args],
                    name=name,
                )
                frame = run.run(log=log)
                frame = frame[frame["method"] == name].rename(columns={"method": "model"})
                frames.append(frame.assign(size=label))
        frame = pd.concat(frames, ignore_index=True)
        atomic_write_text(Path(self.output_dir) / "datasize-folds.csv", frame.to_csv(index=False))
        text, long_form = condition_table(frame, self.reference, group="size")
        header = (
            f"Data size, protocol `{self.protocol}`, seeds {list(self.seeds)}; mean ± std over "
            f"folds; p: Wilcoxon over folds against `{self.reference}`\n\n"
        )
        atomic_write_text(Path(self.output_dir) / "datasize.md", header + text + "\n")
        atomic_write_text(Path(self.output_dir) / "datasize.csv", long_form.to_csv(index=False))
        metric_figure(frame, "size", Path(self.output_dir) / "datasize.png")
        return header + text
