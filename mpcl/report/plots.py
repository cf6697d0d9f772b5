"""Report figures: one function per figure, drawing a data frame of :mod:`mpcl.report.data`.

Matplotlib with the Agg backend (no display needed). One style for every figure: sizes for a
paper column (3.5 in) or the full text width (7.2 in), 8-pt text, the Okabe-Ito colour-blind-safe
palette for categories, ``viridis`` for magnitudes and the diverging ``PuOr`` for differences.
Figures are saved as PNG (for the HTML report) and as vector PDF / SVG (for papers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mpcl.report.data import HIGHER_IS_BETTER, METRIC_DISPLAY, METRIC_NAMES

#: Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
COLUMN_WIDTH = 3.5
FULL_WIDTH = 7.2
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "figure.dpi": 100,
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
}
VALENCE_COLOURS = {0: PALETTE[0], 1: PALETTE[5]}


@contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib style, applied inside the ``with`` block only."""
    with plt.rc_context(STYLE):
        yield


def save_figure(
    fig: Figure, folder: Path, name: str, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` as ``folder/name.<format>`` for each format (PNG at 200 dpi), then close it."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=200 if fmt == "png" else None, metadata=_metadata(fmt))
        paths.append(path)
    plt.close(fig)
    return paths


def _metadata(fmt: str) -> dict[str, str | None] | None:
    # No creation date: the same data gives the same vector file.
    if fmt == "pdf":
        return {"CreationDate": None}
    if fmt == "svg":
        return {"Date": None}
    return None


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER[metric] else "↓"


def _label(metric: str) -> str:
    return f"{METRIC_DISPLAY[metric]} {_arrow(metric)}"


def _emotion_ticks(ax: plt.Axes, names: Sequence[str], axis: str = "x") -> None:
    ticks = np.arange(len(names))
    if axis == "x":
        ax.set_xticks(ticks, names, rotation=60, ha="right", rotation_mode="anchor")
    else:
        ax.set_yticks(ticks, names)


# --------------------------------------------------------------------------- training
def training_curves(curves: pd.DataFrame, selected_epoch: int | None, title: str) -> Figure:
    """Loss, loss terms (training, validation) and validation metrics per epoch.

    A dotted line marks the epoch of the tested checkpoint.
    """
    names = list(dict.fromkeys(curves["name"]))
    panels = [
        ("total loss", [n for n in names if n in ("train/loss_epoch", "val/loss")]),
        (
            "training loss terms",
            [n for n in names if n.startswith("train/loss_") and n != "train/loss_epoch"],
        ),
        ("validation loss terms", [n for n in names if n.startswith("val/loss_")]),
    ]
    panels += [
        (f"validation {_label(m)}", [f"val/{m}"]) for m in METRIC_NAMES if f"val/{m}" in names
    ]
    panels = [(t, series) for t, series in panels if series]
    ncols = 3
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(FULL_WIDTH, 1.9 * nrows), squeeze=False)
    for ax, (panel_title, series) in zip(axes.ravel(), panels, strict=False):
        for name in series:
            part = curves[curves["name"] == name]
            label = name.replace("_epoch", "").replace("loss_", "")
            ax.plot(part["epoch"], part["value"], label=label, lw=1.2)
        if selected_epoch is not None:
            ax.axvline(selected_epoch, color="0.4", lw=0.8, ls=":", label="tested epoch")
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(series) > 1:
            ax.legend(frameon=False, loc="best", fontsize=6)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{title} (dotted: tested epoch)")
    fig.tight_layout()
    return fig


def fold_curves(curves: pd.DataFrame, selected: dict[str, int | None], title: str) -> Figure:
    """Validation KL per epoch of every fold (``curves`` has a ``fold`` column)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    for i, (fold, part) in enumerate(curves.groupby("fold", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        kl = part[part["name"] == "val/kl"]
        ax.plot(kl["epoch"], kl["value"], color=colour, lw=1.1, label=str(fold))
        epoch = selected.get(str(fold))
        if epoch is not None and (kl["epoch"] == epoch).any():
            value = float(kl.loc[kl["epoch"] == epoch, "value"].iloc[0])
            ax.plot([epoch], [value], "o", color=colour, ms=4)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation KL ↓")
    ax.set_title(f"{title}\n(dots: tested epoch)")
    ax.legend(frameon=False, fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- scores
def scores(frame: pd.DataFrame, title: str) -> Figure:
    """The six metrics of the model and the trivial baselines (``method, metric, value``)."""
    methods = list(dict.fromkeys(frame["method"]))
    fig, axes = plt.subplots(1, 6, figsize=(FULL_WIDTH, 2.2))
    for ax, metric in zip(axes, METRIC_NAMES, strict=True):
        part = frame[frame["metric"] == metric].set_index("method")["value"]
        values = [part.get(m, np.nan) for m in methods]
        ax.bar(range(len(methods)), values, color=PALETTE[: len(methods)])
        low, high = np.nanmin(values), np.nanmax(values)
        pad = (high - low) * 0.6 or abs(high) * 0.05 or 0.01
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_title(_label(metric))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def fold_scores(frame: pd.DataFrame, title: str) -> Figure:
    """Per-fold values (dots) with mean ± std (bar) per method and metric (folds.csv means)."""
    methods = list(dict.fromkeys(frame["method"]))
    fig, axes = plt.subplots(1, 6, figsize=(FULL_WIDTH, 2.4))
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes, METRIC_NAMES, strict=True):
        for i, method in enumerate(methods):
            values = frame.loc[frame["method"] == method, metric].to_numpy(dtype=float)
            jitter = rng.uniform(-0.15, 0.15, len(values))
            colour = PALETTE[i % len(PALETTE)]
            ax.plot(i + jitter, values, "o", ms=3, color=colour, alpha=0.7)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(i + 0.3, values.mean(), yerr=std, fmt="_", color="k", ms=8, capsize=2)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(methods) - 0.2)
        ax.set_title(_label(metric))
    fig.suptitle(f"{title}: folds (dots), mean ± std (bars)")
    fig.tight_layout()
    return fig


def per_subject(frame: pd.DataFrame, title: str) -> Figure:
    """KL and Cosine per test subject, with the mean over subjects."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.2))
    subjects = frame["subject"].astype(str).tolist()
    for ax, metric, colour in zip(axes, ("kl", "cosine"), PALETTE, strict=False):
        values = frame[metric].to_numpy()
        ax.bar(range(len(values)), values, color=colour)
        ax.axhline(values.mean(), color="0.3", ls="--", lw=0.8, label="mean over subjects")
        low, high = values.min(), values.max()
        pad = (high - low) * 0.5 or abs(high) * 0.05 or 0.01
        ax.set_ylim(max(0.0, low - pad), high + pad)
        rotation = 90 if len(subjects) > 12 else 0
        ax.set_xticks(range(len(values)), subjects, rotation=rotation)
        ax.set_xlabel("test subject")
        ax.set_ylabel(_label(metric))
        ax.legend(frameon=False, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_emotion(frame: pd.DataFrame, title: str) -> Figure:
    """Mean absolute error per emotion, and mean predicted vs mean true probability."""
    names = frame["emotion"].tolist()
    colours = [VALENCE_COLOURS.get(int(g), PALETTE[2]) for g in frame["valence_group"]]
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.5))
    axes[0].bar(range(len(names)), frame["mae"], color=colours)
    axes[0].set_ylabel("mean absolute error ↓")
    axes[0].set_title("error per emotion (colour: valence group)")
    x = np.arange(len(names))
    axes[1].bar(x - 0.2, frame["mean_target"], 0.4, color=PALETTE[7], label="true")
    axes[1].bar(x + 0.2, frame["mean_pred"], 0.4, color=PALETTE[1], label="predicted")
    axes[1].set_ylabel("mean probability")
    axes[1].set_title("mean distribution over test windows")
    top = float(np.nanmax(frame[["mean_target", "mean_pred"]].to_numpy()))
    axes[1].set_ylim(0, top * 1.3)
    axes[1].legend(frameon=False, loc="upper left", ncols=2)
    for ax in axes:
        _emotion_ticks(ax, names)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- distributions
def distributions(frame: pd.DataFrame, title: str) -> Figure:
    """Predicted vs true distributions of the chosen windows, one small panel each."""
    labels = list(dict.fromkeys(frame["label"]))
    ncols = 3
    nrows = (len(labels) + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(FULL_WIDTH, 2.1 * nrows), squeeze=False, sharey=True
    )
    for ax, label in zip(axes.ravel(), labels, strict=False):
        part = frame[frame["label"] == label]
        names = part["emotion"].tolist()
        x = np.arange(len(names))
        ax.bar(x - 0.2, part["target"], 0.4, color=PALETTE[7], label="true")
        ax.bar(x + 0.2, part["pred"], 0.4, color=PALETTE[1], label="predicted")
        ax.set_title(f"{label}\nKL {part['kl'].iloc[0]:.3f}")
        _emotion_ticks(ax, names)
    for ax in axes[:, 0]:
        ax.set_ylabel("probability")
    for ax in axes.ravel()[len(labels) :]:
        ax.axis("off")
    axes[0, 0].legend(frameon=False, loc="upper left", ncols=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- heatmaps
def _heatmap(
    ax: plt.Axes,
    frame: pd.DataFrame,
    vmin: float,
    vmax: float,
    cmap: str,
    groups: Sequence[int] | None,
    show_y: bool,
) -> matplotlib.image.AxesImage:
    names = list(dict.fromkeys(frame["row"]))
    matrix = frame.pivot(index="row", columns="column", values="value").loc[names, names]
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap=cmap)
    _emotion_ticks(ax, names)
    if show_y:
        _emotion_ticks(ax, names, axis="y")
    else:
        ax.set_yticks(np.arange(len(names)), [""] * len(names))
    if groups is not None:
        # Lines between valence groups (the rows and columns are ordered by group).
        edges = np.flatnonzero(np.diff(np.asarray(groups))) + 0.5
        for edge in edges:
            ax.axhline(edge, color="w" if cmap == "viridis" else "0.3", lw=1.0)
            ax.axvline(edge, color="w" if cmap == "viridis" else "0.3", lw=1.0)
    ax.spines[:].set_visible(False)
    return image


def heatmap_rows(
    frame: pd.DataFrame,
    title: str,
    ordered_groups: Sequence[int] | None,
    diverging_panels: Sequence[str] = (),
    row_key: str = "figure_row",
) -> Figure:
    """Rows of ``C x C`` heatmaps (long form: ``panel, row, column, value``).

    One colour scale per row of panels, and one of its own (diverging) for each panel named in
    ``diverging_panels``.
    """
    if row_key not in frame:
        frame = frame.assign(**{row_key: "matrices"})
    rows = list(dict.fromkeys(frame[row_key]))
    panels = {r: list(dict.fromkeys(frame.loc[frame[row_key] == r, "panel"])) for r in rows}
    ncols = max(len(p) for p in panels.values())
    size = min(2.1, (FULL_WIDTH - 0.8) / ncols)
    fig, axes = plt.subplots(
        len(rows),
        ncols,
        figsize=(size * ncols + 1.0, (size + 0.75) * len(rows) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for r, row in enumerate(rows):
        shared = [p for p in panels[row] if p not in diverging_panels]
        values = frame.loc[frame["panel"].isin(shared), "value"].to_numpy(dtype=float)
        vmin, vmax = (np.nanmin(values), np.nanmax(values)) if len(values) else (0.0, 1.0)
        image = None
        for c, panel in enumerate(panels[row]):
            part = frame[frame["panel"] == panel]
            ax = axes[r, c]
            if panel in diverging_panels:
                limit = float(np.nanmax(np.abs(part["value"].to_numpy(dtype=float)))) or 1.0
                own = _heatmap(ax, part, -limit, limit, "PuOr", ordered_groups, c == 0)
                fig.colorbar(own, ax=ax, shrink=0.8, aspect=15)
            else:
                image = _heatmap(ax, part, vmin, vmax, "viridis", ordered_groups, c == 0)
            ax.set_title(panel)
        for ax in axes[r, len(panels[row]) :]:
            ax.axis("off")
        if image is not None:
            # Beside the whole row (rows of different lengths stay aligned), unless a panel of
            # the row has a scale of its own: then beside the panels that share this one.
            own_scale = len(shared) < len(panels[row])
            where = [axes[r, c] for c, p in enumerate(panels[row]) if p in shared]
            where = where if own_scale else axes[r, :].tolist()
            fig.colorbar(image, ax=where, shrink=0.8, aspect=15)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- MPCL internals
def projection(frame: pd.DataFrame, emotion_names: Sequence[str], title: str) -> Figure:
    """Prototypes (large markers) and test-window embeddings (dots) per branch, by emotion."""
    branches = list(dict.fromkeys(frame["branch"]))
    fig, axes = plt.subplots(
        1, len(branches), figsize=(FULL_WIDTH, 3.0), squeeze=False, layout="constrained"
    )
    markers = "ovs^DP*Xph"
    colours = {
        name: PALETTE[i % len(PALETTE)] if i < len(PALETTE) else plt.cm.tab20(i % 20)
        for i, name in enumerate(emotion_names)
    }
    for ax, branch in zip(axes[0], branches, strict=True):
        part = frame[frame["branch"] == branch]
        for i, name in enumerate(emotion_names):
            windows = part[(part["kind"] == "window") & (part["emotion"] == name)]
            protos = part[(part["kind"] == "prototype") & (part["emotion"] == name)]
            marker = markers[i % len(markers)]
            ax.scatter(windows["x"], windows["y"], s=4, alpha=0.35, color=colours[name], lw=0)
            ax.scatter(
                protos["x"],
                protos["y"],
                s=40,
                marker=marker,
                color=colours[name],
                edgecolor="k",
                lw=0.6,
                label=name,
            )
        ax.set_title(f"{branch} branch")
        ax.set_xlabel("component 1")
        ax.set_ylabel("component 2")
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="outside right center",
        frameon=False,
        title="prototype (marker)\nwindow (dot):\ndominant emotion",
    )
    fig.suptitle(title)
    return fig


def gates(frame: pd.DataFrame, emotion_names: Sequence[str], title: str) -> Figure:
    """MSAM scale-gate weights per branch (stacked bars) and the branch gate per emotion."""
    scale = frame[frame["gate"] == "scale"]
    branch = frame[frame["gate"] == "branch"]
    branches = list(dict.fromkeys(scale["branch"]))
    panels = len(branches) + (1 if len(branch) else 0)
    fig, axes = plt.subplots(
        1, panels, figsize=(FULL_WIDTH, 3.0), squeeze=False, layout="constrained"
    )
    order = ["all", *emotion_names]
    for ax, name in zip(axes[0], branches, strict=False):
        part = scale[scale["branch"] == name]
        table = part.pivot(index="emotion", columns="component", values="value")
        table = table.reindex([e for e in order if e in table.index])
        bottom = np.zeros(len(table))
        for i, component in enumerate(table.columns):
            ax.bar(
                range(len(table)),
                table[component],
                bottom=bottom,
                color=PALETTE[i],
                label=component,
            )
            bottom += table[component].to_numpy()
        _emotion_ticks(ax, list(table.index))
        ax.set_ylabel("mean gate weight")
        ax.set_title(f"MSAM scale gate, {name}\n(windows by dominant emotion)")
        ax.set_ylim(0, 1.0)
    if len(branch):
        ax = axes[0, -1]
        table = branch.set_index("emotion")["value"].reindex(order)
        ax.bar(range(len(table)), table, color=PALETTE[0], label="physiological share g")
        ax.axhline(0.5, color="0.4", ls=":", lw=0.8)
        _emotion_ticks(ax, list(table.index))
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("mean gate g (1 - g: behavioral)")
        ax.set_title("branch gate per emotion query")
    if branches:
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncols=len(scale["component"].unique()),
            frameon=False,
            title="MSAM pooling window",
        )
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- comparison
def comparison(frame: pd.DataFrame, reference: str | None, title: str) -> Figure:
    """Mean ± std over folds per method and metric; ``*`` where Wilcoxon p < 0.05 vs reference.

    ``frame``: ``method, metric, mean, std, folds, p_value`` (the comparison table).
    """
    methods = list(dict.fromkeys(frame["method"]))
    fig, axes = plt.subplots(2, 3, figsize=(FULL_WIDTH, 1.2 + 0.28 * len(methods) * 2))
    for ax, metric in zip(axes.ravel(), METRIC_NAMES, strict=True):
        part = frame[frame["metric"] == metric].set_index("method").reindex(methods)
        y = np.arange(len(methods))[::-1]
        colours = [PALETTE[0] if m == reference else PALETTE[7] for m in methods]
        ax.errorbar(part["mean"], y, xerr=part["std"], fmt="none", ecolor="0.5", capsize=2, lw=0.8)
        ax.scatter(part["mean"], y, color=colours, s=14, zorder=3)
        for yi, method in zip(y, methods, strict=True):
            p = part.loc[method, "p_value"]
            if pd.notna(p) and p < 0.05:
                ax.annotate(
                    "*",
                    (part.loc[method, "mean"], yi),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    fontsize=10,
                    color=PALETTE[5],
                )
        ax.set_yticks(y, methods)
        ax.set_title(_label(metric))
        ax.margins(x=0.15, y=0.15)
    note = f" (* Wilcoxon p < 0.05 vs {reference})" if reference else ""
    fig.suptitle(f"{title}: mean ± std over folds{note}")
    fig.tight_layout()
    return fig
