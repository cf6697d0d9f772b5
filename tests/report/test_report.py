"""Reports: every figure's data equals an independent recomputation from the saved test pass."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mpcl.cli import main as mpcl_main
from mpcl.report import build_report
from mpcl.report.html import SECTIONS
from mpcl.run_folder import read_test_outputs

EPS = np.finfo(np.float64).eps


@pytest.fixture(scope="module")
def mpcl_report(mpcl_run):
    return build_report([mpcl_run], formats=("png", "pdf", "svg"))


def figures(report):
    return report.parent / "figures"


def matrix(frame, panel):
    part = frame[frame["panel"] == panel]
    names = list(dict.fromkeys(part["row"]))
    return part.pivot(index="row", columns="column", values="value").loc[names, names], names


def test_cooccurrence_data_is_the_saved_predictions_recomputed(mpcl_run, mpcl_report):
    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    frame = pd.read_csv(figures(mpcl_report) / "cooccurrence.csv")
    names = outputs.emotion_names
    columns = [names.index(n) for n in matrix(frame, "test predictions")[1]]
    p = outputs["preds"].astype(np.float64)[:, columns]
    # sum_b p_bc p_be / sum_b p_bc, written as a loop over emotions.
    expected = np.stack([(p * p[:, [c]]).sum(0) / p[:, c].sum() for c in range(p.shape[1])])
    # Equal up to float32 rows summing to 1 within 1e-7 (the data normalises by the row sum).
    np.testing.assert_allclose(matrix(frame, "test predictions")[0], expected, rtol=1e-6)
    a = outputs["cooccurrence"].astype(np.float64)[:, columns][:, :, columns]
    got, _ = matrix(frame, "A, all test windows")
    np.testing.assert_allclose(got, a.mean(0), rtol=1e-10)
    for code, label in outputs.category_names.items():
        rows = outputs["category"] == code
        if rows.any():
            got, _ = matrix(frame, f"A, {label}")
            np.testing.assert_allclose(got, a[rows].mean(0), rtol=1e-10)
    # Rows and columns ordered by valence group: the positive emotions first.
    groups = [outputs.valence_groups[names.index(n)] for n in matrix(frame, "test targets")[1]]
    assert groups == sorted(groups)


def test_score_figures_match_their_recomputation(mpcl_run, mpcl_report):
    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    p, d = outputs["preds"].astype(np.float64), outputs["target"].astype(np.float64)
    kl = (np.clip(d, EPS, 1) * np.log(np.clip(d, EPS, 1) / np.clip(p, EPS, 1))).sum(1)
    subjects = pd.read_csv(figures(mpcl_report) / "per_subject.csv").set_index("subject")
    for subject in np.unique(outputs["subject"]):
        rows = outputs["subject"] == subject
        assert subjects.loc[subject, "kl"] == pytest.approx(kl[rows].mean(), rel=1e-9)
        assert subjects.loc[subject, "windows"] == rows.sum()
    emotions = pd.read_csv(figures(mpcl_report) / "per_emotion.csv")
    np.testing.assert_allclose(emotions["mae"], np.abs(p - d).mean(0), rtol=1e-10)
    scores = pd.read_csv(figures(mpcl_report) / "scores.csv")
    results = json.loads((mpcl_run / "test_results.json").read_text())["results"]
    for row in scores.itertuples():
        assert row.value == pytest.approx(results[row.method][row.metric], rel=1e-12)
    examples = pd.read_csv(figures(mpcl_report) / "distributions.csv")
    worst = examples[examples["label"] == "worst KL"]
    assert worst["row"].iloc[0] == int(np.argmax(kl))
    np.testing.assert_allclose(worst["pred"], p[np.argmax(kl)], rtol=1e-6)
    best = examples[examples["label"] == "best KL"]
    np.testing.assert_allclose(best["target"], d[np.argmin(kl)], rtol=1e-6)


def test_training_curves_are_the_logged_values(mpcl_run, mpcl_report):
    curves = pd.read_csv(figures(mpcl_report) / "training_curves.csv")
    logged = pd.read_csv(mpcl_run / "metrics.csv").dropna(subset=["val/kl"])
    got = curves[curves["name"] == "val/kl"].sort_values("epoch")
    np.testing.assert_allclose(got["value"], logged.sort_values("epoch")["val/kl"], rtol=1e-12)


def test_gates_relations_and_prototypes_match_the_saved_internals(mpcl_run, mpcl_report):
    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    names = outputs.emotion_names
    gates = pd.read_csv(figures(mpcl_report) / "gates.csv")
    scale = gates[(gates["gate"] == "scale") & (gates["emotion"] == "all")]
    for branch in ("physiological", "behavioral"):
        got = scale[scale["branch"] == branch]["value"].to_numpy()
        np.testing.assert_allclose(got, outputs[f"scale_gate_{branch}"].mean(0), rtol=1e-6)
    branch_gate = gates[gates["gate"] == "branch"].set_index("emotion")["value"]
    np.testing.assert_allclose(
        branch_gate[names].to_numpy(), outputs["branch_gate"].mean(0), rtol=1e-6
    )
    relations = pd.read_csv(figures(mpcl_report) / "relations.csv")
    got, order = matrix(relations, "physiological R_P")
    mean = outputs["relations_physiological"].astype(np.float64).mean(0)  # [C, C-1]
    i, j = names.index(order[0]), names.index(order[1])
    assert got.loc[order[0], order[1]] == pytest.approx(mean[i, j - (j > i)], rel=1e-9)
    assert np.isnan(got.loc[order[0], order[0]])
    diff, _ = matrix(relations, "difference R_P - R_B")
    np.testing.assert_allclose(diff, got - matrix(relations, "behavioral R_B")[0], rtol=1e-12)
    projected = pd.read_csv(figures(mpcl_report) / "prototypes_pca.csv")
    part = projected[projected["branch"] == "behavioral"]
    c, k, dim = outputs["bank_behavioral"].shape
    assert (part["kind"] == "prototype").sum() == c * k
    assert (part["kind"] == "window").sum() == len(outputs["embedding_rows"])
    # PCA by scikit-learn gives the same plane (up to each component's sign).
    from sklearn.decomposition import PCA

    points = np.concatenate(
        [outputs["bank_behavioral"].reshape(c * k, dim), outputs["embedding_behavioral"]]
    ).astype(np.float64)
    reference = PCA(2).fit_transform(points)
    got_xy = part[["x", "y"]].to_numpy()
    for axis in range(2):
        sign = np.sign(reference[:, axis] @ got_xy[:, axis])
        np.testing.assert_allclose(got_xy[:, axis], sign * reference[:, axis], atol=1e-6)


def test_html_has_every_section_and_embeds_every_figure(mpcl_report):
    text = mpcl_report.read_text()
    for key, title in SECTIONS.items():
        assert f'<section id="{key}"><h2>{title}</h2>' in text
    pngs = sorted(figures(mpcl_report).glob("*.png"))
    names = {p.stem for p in pngs}
    assert {
        "training_curves", "scores", "per_subject", "per_emotion", "distributions",
        "cooccurrence", "prototypes_pca", "prototypes_tsne", "relations", "gates",
    } <= names  # fmt: skip
    assert text.count('src="data:image/png;base64,') == len(pngs)
    for png in pngs:
        assert png.with_suffix(".pdf").is_file() and png.with_suffix(".svg").is_file()
        assert png.with_suffix(".csv").is_file()
    # Nothing is fetched from a network: no remote source, stylesheet or script.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<script" not in text


def test_report_of_a_model_without_internals_says_what_is_absent(mlp_run, tmp_path):
    report = build_report([mlp_run], tmp_path / "mlp-report", formats=("png",))
    text = report.read_text()
    assert "retrieves no co-occurrence matrix A" in text
    assert "has no prototype banks" in text and "has no gates" in text
    frame = pd.read_csv(report.parent / "figures" / "cooccurrence.csv")
    assert set(frame["panel"]) == {"training targets", "test targets", "test predictions"}


def test_protocol_report(protocol_runs, tmp_path):
    mpcl_protocol, _ = protocol_runs
    report = build_report([mpcl_protocol], tmp_path / "protocol", formats=("png",))
    folder = report.parent / "figures"
    per_fold = pd.read_csv(folder / "fold_scores.csv")
    folds = pd.read_csv(mpcl_protocol / "folds.csv")
    expected = folds[folds["method"] == "mpcl"].set_index("fold")["kl"]
    got = per_fold[per_fold["method"] == "mpcl"].set_index("fold")["kl"]
    pd.testing.assert_series_equal(got, expected, check_names=False)
    assert (folder / "fold_curves.png").is_file() and (folder / "cooccurrence.png").is_file()
    # The pooled test pass holds every fold's test windows.
    passes = [read_test_outputs(p) for p in sorted(mpcl_protocol.glob("fold-*/test_outputs.npz"))]
    subjects = pd.read_csv(folder / "per_subject.csv")
    assert subjects["windows"].sum() == sum(len(p["preds"]) for p in passes)


def test_comparison_report_and_tables(protocol_runs, mpcl_run, tmp_path, capsys):
    mpcl_protocol, mlp_protocol = protocol_runs
    out = tmp_path / "comparison"
    with pytest.raises(SystemExit) as exit_info:
        mpcl_main(["report", str(mpcl_protocol), str(mlp_protocol), "--output", str(out)])
    assert exit_info.value.code == 0
    assert f"Report: {(out / 'report.html').resolve()}" in capsys.readouterr().out
    long = pd.read_csv(out / "comparison.csv")
    assert set(long["method"]) == {"mpcl", "train-mean", "uniform", "mlp"}
    latex = (out / "comparison.tex").read_text()
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"\textbf{" in latex
    assert r"KL $\downarrow$" in latex and r"Cosine $\uparrow$" in latex
    markdown = (out / "comparison.md").read_text()
    best_kl = long[long["metric"] == "kl"].sort_values("mean").iloc[0]
    assert f"**{best_kl['mean']:.4f}" in markdown
    cooccurrence = pd.read_csv(out / "figures" / "comparison_cooccurrence.csv")
    assert {"test targets", "mpcl", "mlp"} == set(cooccurrence["panel"])
    assert "Comparison" in (out / "report.html").read_text()


def test_mpcl_report_names_a_bad_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        mpcl_main(["report", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "neither a run folder" in capsys.readouterr().err
