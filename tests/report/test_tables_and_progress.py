"""Paper tables (best in bold, arrows, significance) and the protocol runner's progress line."""

from __future__ import annotations

import pandas as pd

from mpcl.report.tables import latex_comparison, markdown_comparison
from mpcl.runner.progress import RunProgress

METRICS = ["chebyshev", "clark", "canberra", "kl", "cosine", "intersection"]


def frame():
    rows = []
    for method, base, p in (("mpcl", 0.10, float("nan")), ("mlp", 0.20, 0.03), ("knn", 0.15, 0.4)):
        for metric in METRICS:
            # Lower is better except cosine / intersection: mpcl is best on distances, mlp on
            # the similarities.
            mean = base + 0.7 if metric in ("cosine", "intersection") else base
            rows.append(
                {"method": method, "metric": metric, "mean": mean, "std": 0.01, "folds": 5,
                 "p_value": p}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_markdown_bolds_the_best_per_metric_and_marks_significance():
    text = markdown_comparison(frame())
    header, _, mpcl, mlp, knn = text.splitlines()
    assert "KL ↓" in header and "Cosine ↑" in header
    cells = [c.strip() for c in mpcl.split("|")[1:-1]]
    assert cells[4] == "**0.1000 ± 0.0100**"  # KL: lowest is best
    assert cells[5] == "0.8000 ± 0.0100"  # cosine: highest is best, mlp's 0.9
    assert "**0.9000 ± 0.0100**" in mlp
    assert "†" in mlp and "†" not in knn and "†" not in mpcl


def test_latex_is_booktabs_with_bold_and_arrows():
    text = latex_comparison(frame(), caption="Results 100% on fold_0, mean ± std")
    assert text.startswith(r"\begin{table}") and r"\toprule" in text and r"\midrule" in text
    assert r"KL $\downarrow$" in text and r"Intersection $\uparrow$" in text
    assert r"\textbf{0.1000 $\pm$ 0.0100}" in text
    assert r"$^\dagger$" in text
    assert r"100\% on fold\_0, mean $\pm$ std" in text


def test_progress_counts_folds_and_estimates_time_left():
    now = [0.0]
    progress = RunProgress(4, clock=lambda: now[0])
    progress.skip()  # finished in an earlier session
    assert progress.begin(1, 3407) == (
        "[mpcl-protocol] fold 2 of 4 (fold 1, seed 3407): elapsed 0s"
    )
    now[0] = 60.0
    progress.end()
    assert progress.begin(2, 3407) == (
        "[mpcl-protocol] fold 3 of 4 (fold 2, seed 3407): elapsed 1m00s, about 2m00s left"
    )
    now[0] = 200.0
    progress.end()
    assert progress.begin(3, 3407).endswith("elapsed 3m20s, about 1m40s left")
