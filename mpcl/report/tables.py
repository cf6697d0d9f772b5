r"""Comparison tables for papers: Markdown and LaTeX (booktabs), best value in bold, arrows.

Input: the long-form comparison frame of :func:`mpcl.runner.aggregate.comparison_table`
(``method, metric, mean, std, folds, p_value``). A cell is ``mean ± std``; the best mean of each
metric (lowest for ↓, highest for ↑) is bold; ``†`` marks a method whose paired Wilcoxon test
against the reference row has ``p < 0.05``.
"""

from __future__ import annotations

import math

import pandas as pd

from mpcl.report.data import HIGHER_IS_BETTER, METRIC_DISPLAY, METRIC_NAMES

SIGNIFICANT = 0.05


def _best(frame: pd.DataFrame) -> dict[str, float]:
    best = {}
    for metric in METRIC_NAMES:
        means = frame.loc[frame["metric"] == metric, "mean"].dropna()
        if len(means):
            best[metric] = means.max() if HIGHER_IS_BETTER[metric] else means.min()
    return best


def _cells(frame: pd.DataFrame, digits: int, bold: str, dagger: str) -> list[list[str]]:
    best = _best(frame)
    rows = []
    for method in dict.fromkeys(frame["method"]):
        part = frame[frame["method"] == method].set_index("metric")
        cells = [method]
        for metric in METRIC_NAMES:
            if metric not in part.index or pd.isna(part.loc[metric, "mean"]):
                cells.append("-")
                continue
            mean, std = part.loc[metric, "mean"], part.loc[metric, "std"]
            text = f"{mean:.{digits}f}"
            if pd.notna(std) and part.loc[metric, "folds"] > 1:
                text += f" ± {std:.{digits}f}"
            if math.isclose(mean, best[metric], rel_tol=0, abs_tol=0.5 * 10**-digits):
                text = bold.format(text)
            p = part.loc[metric, "p_value"]
            if pd.notna(p) and p < SIGNIFICANT:
                text += dagger
            cells.append(text)
        rows.append(cells)
    return rows


def markdown_comparison(frame: pd.DataFrame, digits: int = 4) -> str:
    """The comparison as a Markdown table (best in ``**bold**``, ``†`` significant)."""
    header = ["method"] + [
        f"{METRIC_DISPLAY[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRIC_NAMES
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _cells(frame, digits, "**{}**", " †")]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    replacements = (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("±", r"$\pm$"),
        ("†", r"$^\dagger$"),
    )
    for char, escaped in replacements:
        text = text.replace(char, escaped)
    return text


def latex_comparison(frame: pd.DataFrame, digits: int = 4, caption: str = "") -> str:
    r"""The comparison as a LaTeX ``table`` with booktabs rules (``\usepackage{booktabs}``)."""
    arrows = {m: r"$\uparrow$" if HIGHER_IS_BETTER[m] else r"$\downarrow$" for m in METRIC_NAMES}
    header = " & ".join(["Method"] + [f"{METRIC_DISPLAY[m]} {arrows[m]}" for m in METRIC_NAMES])
    body = []
    for cells in _cells(frame, digits, r"\textbf{{{}}}", r"$^\dagger$"):
        cells = [_latex_escape(cells[0]), *(c.replace("±", r"$\pm$") for c in cells[1:])]
        body.append(" & ".join(cells) + r" \\")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{l" + "c" * len(METRIC_NAMES) + "}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if caption:
        lines.append(r"\caption{" + _latex_escape(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)
