r"""How much the released HeLo code's evaluation inflates scores: one table, published vs honest.

For each model (``mpcl``, ``mlp``, ``helo``, ...) it runs the same configuration twice or more
through :class:`~mpcl.runner.run.ProtocolRun`:

* **published**: ``random-window`` with ``experiments/protocols/published.yaml`` stacked on the
  config: the released code's ``random_split`` rows, the epoch chosen on the test rows, the first
  sample of each test batch scored, raw features;
* **honest**, one run per protocol given (``clip-holdout``, ``loso``, ``kfold``): the config as
  it is (standardised features, a validation split that chooses the epoch, every test row).

and writes ``inflation.md`` / ``inflation.csv``: per model and metric the mean ± std over folds
under each protocol and ``published - honest``. Runs are resumable (a finished fold is skipped).
The trivial ``train-mean`` predictor is reported as a control: it has no epochs and no features,
so its difference is the effect of which rows are scored.

Example (the measured table of ``docs/baselines.md``)::

    python -m mpcl.runner.inflation --dataset synthetic --models mpcl mlp helo \
        --honest clip-holdout --output runs/inflation/synthetic \
        -- --data.init_args.num_subjects=4 --trainer.max_epochs=20
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from datamodules.protocols import DEFAULT_SEED
from mpcl.io import atomic_write_text
from mpcl.metrics import LDL_METRICS
from mpcl.runner.aggregate import per_fold_means, read_folds, summarize
from mpcl.runner.cli import split_overrides
from mpcl.runner.run import ProtocolRun

PUBLISHED = "published"
PUBLISHED_PROTOCOL = "random-window"
PUBLISHED_OVERLAY = "experiments/protocols/published.yaml"
#: Model names that are a base config plus overlays (the others are experiments/<dataset>/<name>).
MODEL_OVERLAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "helo_reference": ("helo", ("experiments/presets/helo_reference.yaml",)),
}
CONTROL = "train-mean"
#: The published protocol with one of its factors undone (``--decompose``): setting -> overrides.
PUBLISHED_VARIANTS: dict[str, tuple[str, ...]] = {
    "published-numpy-split": ("--data.init_args.split_rng=numpy",),
    "published-epoch-on-val": (
        "--data.init_args.validate_on_test=false",
        "--data.init_args.val_fraction=0.1",
    ),
    "published-every-row": ("--data.init_args.scoring=all",),
    "published-standardised": ("--data.init_args.standardize=true",),
}


def model_configs(dataset: str, model: str, root: Path = Path()) -> list[str]:
    """The config files of ``model`` on ``dataset`` (``experiments/<dataset>/<model>.yaml``).

    Raises:
        FileNotFoundError: A config that does not exist, named with the model.
    """
    base, overlays = MODEL_OVERLAYS.get(model, (model, ()))
    configs = [root / "experiments" / dataset / f"{base}.yaml", *(root / o for o in overlays)]
    missing = [str(c) for c in configs if not c.is_file()]
    if missing:
        raise FileNotFoundError(f"inflation: model {model!r} on {dataset!r} needs {missing}")
    return [str(c) for c in configs]


@dataclass(frozen=True)
class PlannedRun:
    """One protocol run of the table: a model under one setting."""

    model: str
    setting: str
    protocol: str
    configs: tuple[str, ...]
    folder: Path
    overrides: tuple[str, ...] = ()


def planned_runs(
    dataset: str,
    models: Sequence[str],
    honest: Sequence[str],
    output: Path,
    root: Path = Path(),
    variants: Sequence[str] = (),
) -> list[PlannedRun]:
    """Every run of the table, per model: published, the ``variants`` of it, honest."""
    unknown = sorted(set(variants) - set(PUBLISHED_VARIANTS))
    if unknown:
        raise ValueError(f"inflation: unknown variants {unknown}; known {list(PUBLISHED_VARIANTS)}")
    runs = []
    for model in models:
        configs = tuple(model_configs(dataset, model, root))
        published = (*configs, str(root / PUBLISHED_OVERLAY))
        settings = {PUBLISHED: (), **{v: PUBLISHED_VARIANTS[v] for v in variants}}
        for setting, overrides in settings.items():
            folder = output / setting / model
            runs.append(
                PlannedRun(model, setting, PUBLISHED_PROTOCOL, published, folder, overrides)
            )
        runs += [PlannedRun(model, p, p, configs, output / p / model) for p in honest]
    return runs


def _label(method: str, model: str) -> str:
    return CONTROL if method == CONTROL else model


def collect(runs: Sequence[PlannedRun]) -> pd.DataFrame:
    """Long form ``(method, setting, metric, mean, std, folds)`` of the finished runs.

    The model's rows are labelled with the model's name; the ``train-mean`` control is taken from
    the first model's runs (it is the same in every run of one protocol).
    """
    records = []
    seen_control: set[str] = set()
    for run in runs:
        model, setting = run.model, run.setting
        if not (run.folder / "folds.csv").exists():
            continue
        frame = read_folds(run.folder)
        methods = [m for m in dict.fromkeys(frame["method"]) if m not in ("uniform",)]
        for method in methods:
            if method == CONTROL:
                if setting in seen_control:
                    continue
                seen_control.add(setting)
            per_fold = per_fold_means(frame, method)
            means, stds = summarize(per_fold)
            for metric in LDL_METRICS:
                records.append(
                    {
                        "method": _label(method, model),
                        "setting": setting,
                        "metric": metric.name,
                        "mean": means[metric.name],
                        "std": stds[metric.name],
                        "folds": len(per_fold),
                    }
                )
    return pd.DataFrame.from_records(records)


def inflation_table(long_form: pd.DataFrame, honest: Sequence[str], digits: int = 4) -> str:
    """Markdown: rows (method, metric); columns published, each honest setting and the difference.

    ``published - honest`` is marked ``*`` when it flatters the published protocol (lower for a
    ↓ metric, higher for a ↑ one). The last column counts the folds behind each setting.
    """
    header = ["method", "metric", "published"]
    for setting in honest:
        header += [setting, f"published − {setting}"]
    header.append("folds")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cell = long_form.set_index(["method", "setting", "metric"])
    for method in dict.fromkeys(long_form["method"]):
        for metric in LDL_METRICS:
            arrow = "↑" if metric.higher_is_better else "↓"
            row = [method, f"{metric.display} {arrow}"]
            published = _value(cell, method, PUBLISHED, metric.name)
            row.append(_format(published, digits))
            for setting in honest:
                value = _value(cell, method, setting, metric.name)
                row.append(_format(value, digits))
                row.append(_difference(published, value, metric.higher_is_better, digits))
            row.append("/".join(_folds(cell, method, s, metric.name) for s in [PUBLISHED, *honest]))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _value(cell: pd.DataFrame, method: str, setting: str, metric: str) -> tuple[float, float]:
    key = (method, setting, metric)
    if key not in cell.index:
        return (math.nan, math.nan)
    entry = cell.loc[key]
    return float(entry["mean"]), float(entry["std"])


def _folds(cell: pd.DataFrame, method: str, setting: str, metric: str) -> str:
    key = (method, setting, metric)
    return str(int(cell.loc[key]["folds"])) if key in cell.index else "0"


def _format(value: tuple[float, float], digits: int) -> str:
    mean, std = value
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _difference(
    published: tuple[float, float], honest: tuple[float, float], higher: bool, digits: int
) -> str:
    delta = published[0] - honest[0]
    if math.isnan(delta):
        return "-"
    relative = f" ({100 * delta / honest[0]:+.0f} %)" if honest[0] else ""
    flatters = (delta > 0) == higher and delta != 0
    return f"{delta:+.{digits}f}{relative}{' *' if flatters else ''}"


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) every run, then print and write the table."""
    own, overrides = split_overrides(argv)
    parser = argparse.ArgumentParser(prog="python -m mpcl.runner.inflation", description=__doc__)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--models", nargs="+", default=["mpcl", "mlp", "helo"])
    parser.add_argument("--honest", nargs="+", default=["clip-holdout"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED])
    parser.add_argument("--folds", type=int, nargs="+", help="only these folds of every protocol")
    parser.add_argument("--output", default=None, help="default runs/inflation/<dataset>")
    parser.add_argument("--table-only", action="store_true", help="tabulate finished runs only")
    parser.add_argument(
        "--decompose",
        nargs="*",
        choices=list(PUBLISHED_VARIANTS),
        help="also run the published protocol with one factor undone at a time (these, or all)",
    )
    args = parser.parse_args(own)
    if PUBLISHED in args.honest:
        parser.error(f"--honest: {PUBLISHED!r} is the other column")
    output = Path(args.output or Path("runs") / "inflation" / args.dataset)
    variants = [] if args.decompose is None else (args.decompose or list(PUBLISHED_VARIANTS))
    runs = planned_runs(args.dataset, args.models, args.honest, output, variants=variants)
    if not args.table_only:
        for run in runs:
            print(f"[inflation] {run.model} / {run.setting}: {run.folder}", flush=True)
            ProtocolRun(
                configs=run.configs,
                protocol=run.protocol,
                output_dir=run.folder,
                seeds=args.seeds,
                folds=args.folds,
                overrides=[*overrides, *run.overrides],
                name=run.model,
            ).run()
    long_form = collect(runs)
    if long_form.empty:
        raise SystemExit(f"inflation: no finished runs under {output}")
    honest_note = ", ".join(f"`{p}`" for p in args.honest)
    text = (
        f"Published: `{PUBLISHED_PROTOCOL}` + `{PUBLISHED_OVERLAY}`; honest: {honest_note}. "
        "Mean ± std over folds; `*`: the difference flatters the published protocol.\n\n"
        + inflation_table(long_form, args.honest)
    )
    if variants:
        text += (
            "\n\nThe published protocol with one factor undone (`published - variant`; `*`: the "
            "factor flatters the published protocol):\n\n" + inflation_table(long_form, variants)
        )
    atomic_write_text(output / "inflation.md", text + "\n")
    atomic_write_text(output / "inflation.csv", long_form.to_csv(index=False))
    print(f"\n{text}\n\nWritten: {output}/inflation.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
