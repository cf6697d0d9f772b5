"""Build the report of a run, a protocol run or a comparison of several.

Everything read comes through :mod:`mpcl.run_folder`; every number drawn comes from
:mod:`mpcl.report.data`; every figure from :mod:`mpcl.report.plots`. Output folder::

    report.html             self-contained (images embedded)
    figures/<name>.png      every figure, also .pdf (and .svg on request)
    figures/<name>.csv      the data behind it (long form)
    comparison.{md,tex,csv} the comparison table (comparisons only)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec

import numpy as np
import pandas as pd

from mpcl.io import atomic_write_text
from mpcl.report import data, plots
from mpcl.report.html import FigureItem, Page, TableItem, render
from mpcl.report.tables import latex_comparison, markdown_comparison
from mpcl.run_folder import ProtocolFolder, RunFolder, TestOutputs, open_run

REPORT_FILE = "report.html"
P = ParamSpec("P")
TRIVIAL = ("train-mean", "uniform")


@dataclass
class ReportWriter:
    """Saves figures and their data into ``output/figures`` and collects them for the page."""

    output: Path
    page: Page
    formats: Sequence[str] = ("png", "pdf")
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def figures(self) -> Path:
        """The folder of the figure and data files."""
        return self.output / "figures"

    def figure(
        self, section: str, name: str, fig: object, frame: pd.DataFrame, title: str, caption: str
    ) -> None:
        """Save ``fig`` (closing it) and ``frame`` as ``figures/<name>.*``; add it to the page."""
        formats = ["png", *[f for f in self.formats if f != "png"]]
        paths = plots.save_figure(fig, self.figures, name, formats)  # type: ignore[arg-type]
        csv = atomic_write_text(self.figures / f"{name}.csv", frame.to_csv(index=False))
        self.frames[name] = frame
        self.page.add(section, FigureItem(title, caption, paths[0], [*paths, csv]))

    def note(self, section: str, text: str) -> None:
        """A sentence in ``section`` (e.g. why a figure is absent)."""
        self.page.add(section, text)

    def table(self, section: str, title: str, frame: pd.DataFrame, digits: int = 4) -> None:
        """An HTML table of ``frame``."""
        body = frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}f}", border=0)
        self.page.add(section, TableItem(title, body))

    def write(self) -> Path:
        """Write ``report.html``; returns its path."""
        return atomic_write_text(self.output / REPORT_FILE, render(self.page, self.output))


# --------------------------------------------------------------------------- pieces
def _training(writer: ReportWriter, run: RunFolder, label: str) -> None:
    metrics = run.metrics()
    if metrics is None:
        writer.note("training", f"{label}: no CSV log (metrics.csv) to draw learning curves from.")
        return
    curves = data.training_curves(metrics)
    epoch = run.selected_epoch()
    fig = plots.training_curves(curves, epoch, f"Learning curves: {label}")
    caption = (
        "Per-epoch training and validation loss, each loss term (unweighted) and the "
        "validation metrics; the dotted line marks the epoch of the tested checkpoint"
        + (f" ({epoch})." if epoch is not None else " (unknown).")
    )
    writer.figure("training", "training_curves", fig, curves, "Learning curves", caption)


def _scores(writer: ReportWriter, run: RunFolder, label: str) -> None:
    try:
        payload = run.results()
    except FileNotFoundError as missing:
        writer.note("scores", str(missing))
        return
    frame = data.scores_with_baselines(payload["results"])
    fig = plots.scores(frame, f"Test metrics: {label} ({payload.get('num_samples')} windows)")
    writer.figure(
        "scores",
        "scores",
        fig,
        frame,
        "Test metrics with the trivial baselines",
        "The six label-distribution metrics of the model beside the training-mean and uniform "
        "predictors on the same test windows (arrows: better direction).",
    )
    wide = frame.pivot(index="method", columns="metric", values="value")[data.METRIC_NAMES]
    wide.columns.name = None
    writer.table("scores", "Test metrics", wide.reset_index())


def _window_figures(writer: ReportWriter, outputs: TestOutputs, label: str) -> None:
    windows = data.per_window_metrics(outputs)
    subjects = data.per_subject_scores(windows)
    writer.figure(
        "scores",
        "per_subject",
        plots.per_subject(subjects, f"Per test subject: {label}"),
        subjects,
        "Scores per subject",
        "Mean KL and cosine over each test subject's windows (the CSV holds all six metrics).",
    )
    emotions = data.per_emotion_error(outputs)
    writer.figure(
        "scores",
        "per_emotion",
        plots.per_emotion(emotions, f"Per emotion: {label}"),
        emotions,
        "Error per emotion",
        "Mean absolute error of each emotion's probability (colour: valence group), and the mean "
        "predicted against the mean true distribution.",
    )
    examples = data.window_examples(outputs, windows)
    writer.figure(
        "distributions",
        "distributions",
        plots.distributions(examples, f"Predicted vs true distributions: {label}"),
        examples,
        "Predicted vs true distributions",
        "The test windows of lowest, median and highest KL, then the median-KL window of a few "
        "clips (one per clip category where known).",
    )


def _cooccurrence(writer: ReportWriter, outputs: TestOutputs, label: str) -> None:
    frame = data.cooccurrence_panels(outputs)
    groups = list(np.asarray(outputs.valence_groups)[data.valence_order(outputs.valence_groups)])
    fig = plots.heatmap_rows(frame, f"Emotion co-occurrence: {label}", groups)
    caption = (
        "Row c: which emotions come with emotion c (rows sum to 1). Top row: the row-normalised "
        "co-occurrence sum_b d_bc d_be / sum_b d_bc of the training targets, the test targets "
        "and the model's test predictions."
    )
    if "cooccurrence" in outputs:
        caption += (
            " Bottom row: MPCL's retrieved co-occurrence matrix A averaged over the test windows, "
            "overall and per clip category."
        )
    caption += " Emotions ordered by valence group (white lines); one colour scale per row."
    writer.figure("cooccurrence", "cooccurrence", fig, frame, "Co-occurrence", caption)
    if "cooccurrence" not in outputs:
        writer.note(
            "cooccurrence",
            f"{outputs.meta.get('model')} retrieves no co-occurrence matrix A (MPCL only).",
        )


def _prototypes(writer: ReportWriter, outputs: TestOutputs, label: str) -> None:
    model = outputs.meta.get("model")
    projected = data.prototype_projection(outputs, "pca")
    if projected is None:
        writer.note("prototypes", f"{model} has no prototype banks (MPCL only).")
    else:
        names = outputs.emotion_names
        writer.figure(
            "prototypes",
            "prototypes_pca",
            plots.projection(projected, names, f"Prototypes and test windows, PCA: {label}"),
            projected,
            "Prototype banks and window embeddings (PCA)",
            "Each branch's C x K prototypes (large markers) and the pooled branch embeddings of "
            "test windows (dots), coloured by emotion (windows: dominant target emotion); "
            "PCA fitted per branch.",
        )
        tsne = data.prototype_projection(outputs, "tsne")
        if tsne is None:
            writer.note("prototypes", "t-SNE needs scikit-learn (pip install scikit-learn).")
        else:
            writer.figure(
                "prototypes",
                "prototypes_tsne",
                plots.projection(tsne, names, f"Prototypes and test windows, t-SNE: {label}"),
                tsne,
                "Prototype banks and window embeddings (t-SNE)",
                "As above, with t-SNE (scikit-learn, seed 0) instead of PCA, on at most "
                f"{data.TSNE_WINDOWS} evenly spaced windows.",
            )
    relations = data.relation_panels(outputs)
    if relations is None:
        writer.note("prototypes", f"{model}: no two-branch relation matrices (MPCL only).")
        return
    groups = list(np.asarray(outputs.valence_groups)[data.valence_order(outputs.valence_groups)])
    writer.figure(
        "prototypes",
        "relations",
        plots.heatmap_rows(
            relations,
            f"Emotion relations of the two branches: {label}",
            groups,
            diverging_panels=["difference R_P - R_B"],
        ),
        relations,
        "Prototype relation matrices",
        "The emotion-to-emotion relations R that prototype relation distillation aligns (row c: "
        "softmax over the other emotions of cos(Z_c, Z_e) / tau), averaged over test windows, "
        "for the physiological and the behavioral branch, and their difference.",
    )


def _gates(writer: ReportWriter, outputs: TestOutputs, label: str) -> None:
    summary = data.gate_summary(outputs)
    if summary is None:
        writer.note("gates", f"{outputs.meta.get('model')} has no gates (MPCL only).")
        return
    writer.figure(
        "gates",
        "gates",
        plots.gates(summary, outputs.emotion_names, f"Gates: {label}"),
        summary,
        "Memory-scale and branch gates",
        "Mean MSAM scale-gate weight of each pooling window per branch (all windows, then "
        "windows grouped by dominant emotion), and the branch gate g per emotion query "
        "(E = g Z_P + (1 - g) Z_B, averaged over features and windows).",
    )


def _outputs_sections(writer: ReportWriter, outputs: TestOutputs | None, label: str) -> None:
    if outputs is None:
        for section in ("distributions", "cooccurrence", "prototypes", "gates"):
            writer.note(
                section,
                f"{label}: no saved test pass (test_outputs.npz); test the run again with this "
                "version of mpcl to get these figures.",
            )
        return
    _window_figures(writer, outputs, label)
    _cooccurrence(writer, outputs, label)
    _prototypes(writer, outputs, label)
    _gates(writer, outputs, label)


# --------------------------------------------------------------------------- reports
def _styled(build: Callable[P, Path]) -> Callable[P, Path]:
    """Run a report builder inside the report's matplotlib style."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Path:
        with plots.style():
            return build(*args, **kwargs)

    return wrapper


@_styled
def run_report(run: RunFolder, output: Path, formats: Sequence[str] = ("png", "pdf")) -> Path:
    """The report of one run; returns the path of ``report.html``."""
    outputs = run.test_outputs()
    model = outputs.meta.get("model") if outputs else run.results().get("model")
    page = Page(f"Report: {run.name}", f"Model {model}; run folder {run.root}.")
    writer = ReportWriter(output, page, formats)
    _training(writer, run, run.name)
    _scores(writer, run, run.name)
    _outputs_sections(writer, outputs, run.name)
    writer.note("comparison", "One run: give several run folders to compare them.")
    return writer.write()


@_styled
def protocol_report(
    protocol: ProtocolFolder, output: Path, formats: Sequence[str] = ("png", "pdf")
) -> Path:
    """The report of a protocol run: per-fold scores, then figures over every fold's test pass."""
    info = protocol.run_info()
    folds = protocol.folds()
    runs = protocol.fold_runs()
    page = Page(
        f"Report: protocol run {protocol.name}",
        f"Model {info.get('model', '?')}, protocol {info.get('protocol', '?')}, "
        f"{folds['fold'].nunique()} folds, seeds {sorted(set(folds['seed']))}; folder "
        f"{protocol.root}.",
    )
    writer = ReportWriter(output, page, formats)
    _fold_training(writer, runs, protocol.name)
    per_fold = folds.groupby(["method", "fold"], sort=False)[data.METRIC_NAMES].mean()
    per_fold = per_fold.reset_index()
    writer.figure(
        "scores",
        "fold_scores",
        plots.fold_scores(per_fold, f"Per fold: {protocol.name}"),
        per_fold,
        "Scores per fold",
        "Every fold's test metrics (seeds averaged within a fold) for the model and the trivial "
        "baselines; bars: mean ± standard deviation over folds.",
    )
    summary = (
        per_fold.groupby("method", sort=False)[data.METRIC_NAMES].agg(["mean", "std"]).round(4)
    )
    summary.columns = [f"{m} {s}" for m, s in summary.columns]
    writer.table("scores", "Mean and standard deviation over folds", summary.reset_index())
    outputs = [o for o in (r.test_outputs() for r in runs) if o is not None]
    pooled = data.pool_outputs(outputs) if outputs else None
    if pooled is not None:
        writer.note(
            "scores",
            f"The figures below pool the test windows of {len(outputs)} folds (each test window "
            "once per seed); prototype banks and embeddings are those of the first fold.",
        )
    _outputs_sections(writer, pooled, f"{protocol.name}, all folds")
    writer.note("comparison", "One protocol run: give several run folders to compare them.")
    return writer.write()


def _fold_training(writer: ReportWriter, runs: Sequence[RunFolder], label: str) -> None:
    frames, selected = [], {}
    for run in runs:
        metrics = run.metrics()
        if metrics is None:
            continue
        frames.append(data.training_curves(metrics).assign(fold=run.name))
        selected[run.name] = run.selected_epoch()
    if not frames:
        writer.note("training", "No fold has a CSV log (metrics.csv) to draw learning curves from.")
        return
    curves = pd.concat(frames, ignore_index=True)
    writer.figure(
        "training",
        "fold_curves",
        plots.fold_curves(curves, selected, f"Validation KL per fold: {label}"),
        curves,
        "Learning curves of every fold",
        "Validation KL per epoch of each fold; the dot marks the tested checkpoint's epoch. The "
        "CSV holds every logged curve of every fold.",
    )


def _per_fold_of(source: RunFolder | ProtocolFolder) -> dict[str, pd.DataFrame]:
    """Row label -> per-fold metric means (one row for a single run)."""
    if isinstance(source, ProtocolFolder):
        frame = source.folds()
        return {
            m: frame[frame["method"] == m].groupby("fold")[data.METRIC_NAMES].mean()
            for m in dict.fromkeys(frame["method"])
        }
    results = source.results()["results"]
    return {m: pd.DataFrame([v], index=pd.Index([0], name="fold")) for m, v in results.items()}


@_styled
def comparison_report(
    sources: Sequence[RunFolder | ProtocolFolder],
    output: Path,
    reference: str | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> Path:
    """Several runs side by side: metrics with Wilcoxon tests, tables, prediction co-occurrence."""
    from mpcl.runner.aggregate import comparison_table

    runs: dict[str, pd.DataFrame] = {}
    labels: dict[str, RunFolder | ProtocolFolder] = {}
    for source in sources:
        for method, per_fold in _per_fold_of(source).items():
            if method in TRIVIAL:
                if method in runs:
                    continue
                label = method
            else:
                label = method if method not in runs else f"{method} ({source.name})"
                labels[label] = source
            runs[label] = per_fold
    reference = reference or next(iter(labels), None)
    if reference is not None and reference not in runs:
        raise ValueError(f"reference {reference!r} is not a row; rows: {list(runs)}")
    _, long = comparison_table(runs, reference=reference)
    page = Page(
        "Report: comparison",
        "Runs: " + ", ".join(f"{label} ({s.root})" for label, s in labels.items()) + ".",
    )
    writer = ReportWriter(output, page, formats)
    writer.figure(
        "comparison",
        "comparison",
        plots.comparison(long, reference, "Comparison"),
        long,
        "Metrics of every method",
        "Mean ± standard deviation over folds (one value for a single run); * marks a two-sided "
        f"Wilcoxon signed-rank p < 0.05 over folds against {reference}.",
    )
    markdown = markdown_comparison(long)
    latex = latex_comparison(long, caption="Mean ± std over folds; best in bold; † p < 0.05.")
    atomic_write_text(output / "comparison.md", markdown + "\n")
    atomic_write_text(output / "comparison.tex", latex + "\n")
    atomic_write_text(output / "comparison.csv", long.to_csv(index=False))
    page.add("comparison", TableItem("Markdown (comparison.md)", markdown, preformatted=True))
    page.add("comparison", TableItem("LaTeX, booktabs (comparison.tex)", latex, True))
    _comparison_cooccurrence(writer, labels)
    for section in ("training", "scores", "distributions", "prototypes", "gates"):
        writer.note(section, "A comparison: see each run's own report for this section.")
    return writer.write()


def _comparison_cooccurrence(
    writer: ReportWriter, labels: dict[str, RunFolder | ProtocolFolder]
) -> None:
    frames = []
    first: TestOutputs | None = None
    for label, source in labels.items():
        if isinstance(source, ProtocolFolder):
            found = [o for o in (r.test_outputs() for r in source.fold_runs()) if o is not None]
            outputs = data.pool_outputs(found) if found else None
        else:
            outputs = source.test_outputs()
        if outputs is None:
            continue
        first = first or outputs
        order = data.valence_order(outputs.valence_groups)
        matrix = data.cooccurrence(outputs["preds"])
        frames.append(data.matrix_frame(matrix, outputs.emotion_names, label, order))
    if first is None:
        writer.note("cooccurrence", "No compared run has a saved test pass (test_outputs.npz).")
        return
    target = data.cooccurrence(first["target"])
    order = data.valence_order(first.valence_groups)
    frames.insert(0, data.matrix_frame(target, first.emotion_names, "test targets", order))
    frame = pd.concat(frames, ignore_index=True)
    groups = list(np.asarray(first.valence_groups)[order])
    writer.figure(
        "cooccurrence",
        "comparison_cooccurrence",
        plots.heatmap_rows(frame, "Prediction co-occurrence of every method", groups),
        frame,
        "Prediction co-occurrence side by side",
        "Row-normalised co-occurrence of each method's test predictions, beside that of the test "
        "targets (of the first run); one colour scale.",
    )


def build_report(
    paths: Sequence[str | Path],
    output: str | Path | None = None,
    reference: str | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> Path:
    """Report of one run / protocol run, or a comparison of several; returns ``report.html``.

    Args:
        paths: Run folders (see :func:`mpcl.run_folder.open_run`).
        output: Report folder; default ``<run>/report`` for one run, ``runs/comparison-report``
            for several.
        reference: Comparison row tested against the others; default the first run's model.
        formats: Figure formats besides PNG (``pdf``, ``svg``).
    """
    if not paths:
        raise ValueError("build_report: give at least one run folder")
    sources = [open_run(p) for p in paths]
    if len(sources) == 1:
        source = sources[0]
        folder = Path(output) if output else source.root / "report"
        if isinstance(source, ProtocolFolder):
            return protocol_report(source, folder, formats)
        return run_report(source, folder, formats)
    folder = Path(output) if output else Path("runs") / "comparison-report"
    return comparison_report(sources, folder, reference, formats)


def figure_index(report: Path) -> dict[str, list[str]]:
    """Figure name -> its files, from a report folder (for listings and tests)."""
    found: dict[str, list[str]] = {}
    for path in sorted((report.parent / "figures").iterdir()):
        found.setdefault(path.stem, []).append(path.suffix[1:])
    return found
