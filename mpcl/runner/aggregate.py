"""Aggregate per-fold results into mean ± std tables, side by side, with paired tests.

A protocol run stores one row per (fold, seed) in ``folds.csv``. Seeds are averaged within a
fold first, so the standard deviation and the paired test are over folds (the unit the protocol
samples), not over fold-seed pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from scipy.stats import wilcoxon

from mpcl.metrics import LDL_METRICS
from mpcl.tables import markdown_table

METRIC_NAMES = [m.name for m in LDL_METRICS]
FOLDS_FILE = "folds.csv"


def read_folds(run_dir: str | Path) -> pd.DataFrame:
    """The per-fold rows of a protocol run (raises a clear error when there are none)."""
    path = Path(run_dir) / FOLDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-fold results; run `mpcl-protocol run` first")
    frame = pd.read_csv(path)
    missing = [c for c in ("fold", "seed", *METRIC_NAMES) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return frame


def per_fold_means(frame: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """One row per fold: the metrics averaged over seeds (for one ``method`` if given)."""
    if method is not None:
        frame = frame[frame["method"] == method]
    return frame.groupby("fold")[METRIC_NAMES].mean().sort_index()


def summarize(per_fold: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample standard deviation (ddof 1; 0 for one fold) over folds, per metric."""
    means = {m: float(per_fold[m].mean()) for m in METRIC_NAMES}
    stds = {m: float(per_fold[m].std(ddof=1)) if len(per_fold) > 1 else 0.0 for m in METRIC_NAMES}
    return means, stds


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value over the folds both series have.

    NaN when fewer than two common folds; 1.0 when every paired difference is zero.
    """
    common = a.index.intersection(b.index)
    if len(common) < 2:
        return math.nan
    diff = a.loc[common].to_numpy() - b.loc[common].to_numpy()
    if not diff.any():
        return 1.0
    return float(wilcoxon(a.loc[common], b.loc[common]).pvalue)


def comparison_table(
    runs: Mapping[str, pd.DataFrame], reference: str | None = None, digits: int = 4
) -> tuple[str, pd.DataFrame]:
    """Rows of methods, columns of metrics (mean ± std over folds), optional paired tests.

    Args:
        runs: Row label -> per-fold table (as :func:`per_fold_means` returns).
        reference: Label of the row the others are tested against (Wilcoxon signed-rank over
            folds, two-sided); its p-values are printed in a second table.
        digits: Decimal places.

    Returns:
        The Markdown text and a long-form frame (method, metric, mean, std, folds, p_value).
    """
    means, stds, records = {}, {}, []
    for label, per_fold in runs.items():
        means[label], stds[label] = summarize(per_fold)
        for metric in METRIC_NAMES:
            p_value = math.nan
            if reference is not None and label != reference:
                p_value = paired_wilcoxon(per_fold[metric], runs[reference][metric])
            records.append(
                {
                    "method": label,
                    "metric": metric,
                    "mean": means[label][metric],
                    "std": stds[label][metric],
                    "folds": len(per_fold),
                    "p_value": p_value,
                }
            )
    for label, per_fold in runs.items():
        means[label]["folds"] = len(per_fold)
    text = markdown_table(means, stds, digits=digits, extra_columns=["folds"])
    if reference is not None and len(runs) > 1:
        p_rows = {
            label: {r["metric"]: r["p_value"] for r in records if r["method"] == label}
            for label in runs
            if label != reference
        }
        text += (
            f"\n\nWilcoxon signed-rank p-values over folds against `{reference}` (two-sided):\n\n"
            + markdown_table(p_rows, digits=4)
        )
    return text, pd.DataFrame.from_records(records)
