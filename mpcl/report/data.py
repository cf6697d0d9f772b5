r"""The numbers behind every report figure, computed from a run's saved test pass only.

Every function takes :class:`~mpcl.run_folder.TestOutputs` (or frames read from a run folder) and
returns a :class:`pandas.DataFrame` that is both plotted and saved next to the figure, so that a
figure and its data file can never disagree.

Co-occurrence of a set of distributions ``d_b`` (targets or predictions) is the row-normalised
second moment

.. math::
    M_{c,e} = \frac{\sum_b d_{b,c}\, d_{b,e}}{\sum_b d_{b,c}},

the mean distribution of the windows weighted by how much they show emotion ``c``: row ``c`` says
which emotions come with ``c``. It is row-stochastic like MPCL's retrieved matrix ``A``, so both
read the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mpcl.metrics import LDL_METRICS
from mpcl.run_folder import TestOutputs

METRIC_NAMES = [m.name for m in LDL_METRICS]
METRIC_DISPLAY = {m.name: m.display for m in LDL_METRICS}
HIGHER_IS_BETTER = {m.name: m.higher_is_better for m in LDL_METRICS}
BRANCHES = ("physiological", "behavioral")


def valence_order(valence_groups: Sequence[int]) -> np.ndarray:
    """Emotion indices sorted by valence group (stable: the data set's order within a group)."""
    return np.argsort(np.asarray(valence_groups), kind="stable")


#: Arrays of a test pass that are not one row per window.
_STATIC_PREFIXES = ("bank_", "scales_", "embedding_", "train_target_second_moment")


def pool_outputs(parts: Sequence[TestOutputs]) -> TestOutputs:
    """The test passes of several folds as one: per-window arrays concatenated.

    The training-target moment is averaged over folds; prototype banks, scales and embeddings
    (with ``embedding_rows``) are those of the first fold, whose rows come first.
    """
    first = parts[0]
    names = first.emotion_names
    for part in parts[1:]:
        if part.emotion_names != names:
            raise ValueError(
                f"{part.path}: emotions {part.emotion_names} differ from {first.path}'s {names}"
            )
    sizes = [len(p["preds"]) for p in parts]
    per_window = [
        k
        for k in first.arrays
        if not k.startswith(_STATIC_PREFIXES)
        and all(k in p.arrays and len(p[k]) == n for p, n in zip(parts, sizes, strict=True))
    ]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in per_window}
    for key, value in first.arrays.items():
        if key.startswith(_STATIC_PREFIXES) and key != "train_target_second_moment":
            arrays[key] = value
    moments = [p["train_target_second_moment"] for p in parts if "train_target_second_moment" in p]
    if moments:
        arrays["train_target_second_moment"] = np.mean(moments, axis=0)
    return TestOutputs(arrays, dict(first.meta), first.path)


def per_window_metrics(outputs: TestOutputs) -> pd.DataFrame:
    """The six metrics of every test window, with its ids (``subject``, ``trial``, ``index``)."""
    preds = torch.from_numpy(np.asarray(outputs["preds"], dtype=np.float64))
    target = torch.from_numpy(np.asarray(outputs["target"], dtype=np.float64))
    frame = pd.DataFrame({k: outputs[k] for k in ("subject", "trial", "index")})
    if "category" in outputs:
        frame["category"] = outputs["category"]
    for metric in LDL_METRICS:
        frame[metric.name] = metric.function(preds, target).numpy()
    return frame


def per_subject_scores(windows: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over every test window of a subject; one row per subject."""
    grouped = windows.groupby("subject")
    frame = grouped[METRIC_NAMES].mean()
    frame.insert(0, "windows", grouped.size())
    return frame.reset_index()


def per_emotion_error(outputs: TestOutputs) -> pd.DataFrame:
    """Per emotion: mean absolute error, mean predicted and mean true probability."""
    preds = np.asarray(outputs["preds"], dtype=np.float64)
    target = np.asarray(outputs["target"], dtype=np.float64)
    return pd.DataFrame(
        {
            "emotion": outputs.emotion_names,
            "valence_group": outputs.valence_groups,
            "mae": np.abs(preds - target).mean(axis=0),
            "mean_pred": preds.mean(axis=0),
            "mean_target": target.mean(axis=0),
        }
    )


def window_examples(outputs: TestOutputs, windows: pd.DataFrame, per_clip: int = 3) -> pd.DataFrame:
    """Windows to show as predicted vs true bars: best, median and worst by KL, then some clips.

    The clips are the first ``per_clip`` (subject, trial) pairs in row order whose categories
    differ where categories are known (one positive, one negative, one mixed clip on DMER); of
    each, the window of median KL is shown.

    Returns:
        One row per (window, emotion): ``label``, ``row`` (position in the saved arrays),
        ``subject``, ``trial``, ``index``, ``kl``, ``emotion``, ``target``, ``pred``.
    """
    kl = windows["kl"].to_numpy()
    order = np.argsort(kl, kind="stable")
    picks = [
        ("best KL", int(order[0])),
        ("median KL", int(order[len(order) // 2])),
        ("worst KL", int(order[-1])),
    ]
    clips = windows.groupby(["subject", "trial"], sort=False)
    seen_categories: set[int] = set()
    chosen = 0
    names = outputs.category_names
    for (subject, trial), rows in clips:
        if chosen >= per_clip:
            break
        category = int(rows["category"].iloc[0]) if "category" in rows else None
        if category is not None and category in seen_categories:
            continue
        if category is not None:
            seen_categories.add(category)
        ranked = rows.index[np.argsort(rows["kl"].to_numpy(), kind="stable")]
        label = f"clip {trial} (subject {subject})"
        if category is not None and category in names:
            label += f", {names[category]}"
        picks.append((label, int(ranked[len(ranked) // 2])))
        chosen += 1
    records = []
    preds, target = outputs["preds"], outputs["target"]
    for label, row in picks:
        for c, emotion in enumerate(outputs.emotion_names):
            records.append(
                {
                    "label": label,
                    "row": row,
                    "subject": int(windows["subject"].iloc[row]),
                    "trial": int(windows["trial"].iloc[row]),
                    "index": int(windows["index"].iloc[row]),
                    "kl": float(kl[row]),
                    "emotion": emotion,
                    "target": float(target[row, c]),
                    "pred": float(preds[row, c]),
                }
            )
    return pd.DataFrame.from_records(records)


def cooccurrence_from_moment(second_moment: np.ndarray) -> np.ndarray:
    """Row-normalised co-occurrence ``M`` from the second moment ``E[d d^T]`` (``[C, C]``)."""
    moment = np.asarray(second_moment, dtype=np.float64)
    totals = moment.sum(axis=1, keepdims=True)
    return moment / np.where(totals > 0, totals, 1.0)


def cooccurrence(distributions: np.ndarray) -> np.ndarray:
    """Row-normalised co-occurrence ``M`` of distributions ``[N, C]`` (module docstring)."""
    d = np.asarray(distributions, dtype=np.float64)
    return cooccurrence_from_moment(d.T @ d / max(len(d), 1))


def matrix_frame(
    matrix: np.ndarray, names: Sequence[str], panel: str, order: np.ndarray
) -> pd.DataFrame:
    """A ``C x C`` matrix in long form (``panel, row, column, value``), rows and columns ordered."""
    rows = []
    for i in order:
        for j in order:
            rows.append(
                {"panel": panel, "row": names[i], "column": names[j], "value": matrix[i, j]}
            )
    return pd.DataFrame.from_records(rows)


def cooccurrence_panels(outputs: TestOutputs) -> pd.DataFrame:
    """Every co-occurrence panel of a run, in long form, with its row of the figure.

    Row ``labels``: co-occurrence of the training targets, the test targets and the test
    predictions. Row ``retrieved`` (MPCL): ``A`` averaged over every test window, then over the
    windows of each trial category (DMER: positive, negative, mixed clip).
    """
    names, order = outputs.emotion_names, valence_order(outputs.valence_groups)
    panels: list[tuple[str, str, np.ndarray]] = []
    if "train_target_second_moment" in outputs:
        moment = outputs["train_target_second_moment"]
        panels.append(("labels", "training targets", cooccurrence_from_moment(moment)))
    panels.append(("labels", "test targets", cooccurrence(outputs["target"])))
    panels.append(("labels", "test predictions", cooccurrence(outputs["preds"])))
    if "cooccurrence" in outputs:
        retrieved = np.asarray(outputs["cooccurrence"], dtype=np.float64)
        panels.append(("retrieved", "A, all test windows", retrieved.mean(axis=0)))
        if "category" in outputs:
            category = outputs["category"]
            for code in np.unique(category):
                label = outputs.category_names.get(int(code), f"category {int(code)}")
                panels.append(("retrieved", f"A, {label}", retrieved[category == code].mean(0)))
    frames = [
        matrix_frame(m, names, panel, order).assign(figure_row=row) for row, panel, m in panels
    ]
    return pd.concat(frames, ignore_index=True)


def relation_panels(outputs: TestOutputs) -> pd.DataFrame | None:
    """Mean emotion-to-emotion relations ``R`` of both branches and their difference (P - B).

    ``relations_<branch>`` holds, per window, row ``c`` over the other emotions; the diagonal,
    which distillation leaves out, is NaN here.
    """
    if not all(f"relations_{b}" in outputs for b in BRANCHES):
        return None
    names, order = outputs.emotion_names, valence_order(outputs.valence_groups)
    c = len(names)
    means = {}
    for branch in BRANCHES:
        off = np.asarray(outputs[f"relations_{branch}"], dtype=np.float64).mean(axis=0)
        full = np.full((c, c), np.nan)
        for i in range(c):
            full[i, [j for j in range(c) if j != i]] = off[i]
        means[branch] = full
    panels = [
        ("physiological R_P", means["physiological"]),
        ("behavioral R_B", means["behavioral"]),
        ("difference R_P - R_B", means["physiological"] - means["behavioral"]),
    ]
    return pd.concat([matrix_frame(m, names, p, order) for p, m in panels], ignore_index=True)


def dominant_emotion(target: np.ndarray) -> np.ndarray:
    """Index of the largest probability of each row (the first on ties)."""
    return np.asarray(target).argmax(axis=1)


def pca_2d(points: np.ndarray) -> np.ndarray:
    """The first two principal-component scores of ``points`` ``[N, D]`` (SVD of the centred data).

    Signs are fixed so that each component's largest-magnitude loading is positive, which makes
    the projection deterministic.
    """
    x = np.asarray(points, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    scores = x @ components.T
    if scores.shape[1] < 2:
        scores = np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))
    return scores


def tsne_2d(points: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """t-SNE embedding of ``points`` (scikit-learn), or ``None`` when it is not installed."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return None
    n = len(points)
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(np.asarray(points, dtype=np.float64))


#: Most windows in a t-SNE projection (its cost grows faster than linearly), evenly spaced.
TSNE_WINDOWS = 1000


def prototype_projection(outputs: TestOutputs, method: str = "pca") -> pd.DataFrame | None:
    """2-D projection of each branch's prototype bank with that branch's test-window embeddings.

    The branches live in different spaces (separate tokenizers and fusion), so each branch is
    projected on its own: its ``C * K`` prototypes and the embeddings of the saved windows.

    Args:
        outputs: The test pass (needs ``bank_<branch>`` and ``embedding_<branch>``).
        method: ``pca``, or ``tsne`` (at most :data:`TSNE_WINDOWS` windows; ``None`` is
            returned without scikit-learn).

    Returns:
        ``branch, kind (prototype | window), emotion, x, y`` (``emotion``: the prototype's, or the
        window's dominant target emotion), or ``None`` without banks.
    """
    names = outputs.emotion_names
    frames = []
    for branch in BRANCHES:
        if f"bank_{branch}" not in outputs or f"embedding_{branch}" not in outputs:
            continue
        bank = np.asarray(outputs[f"bank_{branch}"], dtype=np.float64)
        c, k, d = bank.shape
        embeddings = np.asarray(outputs[f"embedding_{branch}"], dtype=np.float64)
        rows = outputs["embedding_rows"]
        if method == "tsne" and len(rows) > TSNE_WINDOWS:
            keep = np.unique(np.linspace(0, len(rows) - 1, TSNE_WINDOWS).astype(np.int64))
            embeddings, rows = embeddings[keep], rows[keep]
        points = np.concatenate([bank.reshape(c * k, d), embeddings])
        xy = pca_2d(points) if method == "pca" else tsne_2d(points)
        if xy is None:
            return None
        dominant = dominant_emotion(outputs["target"][rows])
        emotion = [names[i] for i in np.repeat(np.arange(c), k)] + [names[i] for i in dominant]
        frames.append(
            pd.DataFrame(
                {
                    "branch": branch,
                    "kind": ["prototype"] * (c * k) + ["window"] * len(embeddings),
                    "emotion": emotion,
                    "x": xy[:, 0],
                    "y": xy[:, 1],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else None


def gate_summary(outputs: TestOutputs) -> pd.DataFrame | None:
    """Mean gate weights: MSAM scale gates per branch and the branch gate, per dominant emotion.

    Returns:
        ``gate, branch, emotion, component, value``: for ``gate = scale`` the component is a
        pooling window ``s=1, 2, 4`` and the value its mean weight; for ``gate = branch`` the
        component is ``physiological`` and the value the mean gate ``g`` of the emotion's query
        (its physiological share; ``1 - g`` is behavioral). ``emotion = all`` averages every
        window; otherwise windows are grouped by their dominant target emotion (scale gate) or
        the value is the gate of that emotion's query (branch gate).
    """
    names = outputs.emotion_names
    dominant = dominant_emotion(outputs["target"])
    records = []
    for branch in BRANCHES:
        key = f"scale_gate_{branch}"
        if key not in outputs:
            continue
        gate = np.asarray(outputs[key], dtype=np.float64)
        scales = outputs.arrays.get(f"scales_{branch}", np.arange(1, gate.shape[1] + 1))
        groups = [("all", np.ones(len(gate), dtype=bool))]
        groups += [(names[c], dominant == c) for c in range(len(names))]
        for emotion, mask in groups:
            if not mask.any():
                continue
            means = gate[mask].mean(axis=0)
            for s, value in zip(scales, means, strict=True):
                records.append(
                    {
                        "gate": "scale",
                        "branch": branch,
                        "emotion": emotion,
                        "component": f"s={int(s)}",
                        "value": float(value),
                    }
                )
    if "branch_gate" in outputs:
        gate = np.asarray(outputs["branch_gate"], dtype=np.float64)
        values = [("all", float(gate.mean()))]
        values += [(names[c], float(gate[:, c].mean())) for c in range(len(names))]
        for emotion, value in values:
            records.append(
                {
                    "gate": "branch",
                    "branch": "both",
                    "emotion": emotion,
                    "component": "physiological",
                    "value": value,
                }
            )
    return pd.DataFrame.from_records(records) if records else None


def training_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch curves in long form (``epoch, name, value``): losses, loss terms, val metrics."""
    keep = [
        c
        for c in metrics.columns
        if (c.startswith("train/loss") and c.endswith("_epoch"))
        or c.startswith("val/loss")
        or (c.startswith("val/") and c.split("/", 1)[1] in METRIC_NAMES)
    ]
    long = metrics[keep].reset_index().melt(id_vars="epoch", var_name="name", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def scores_with_baselines(results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """``method, metric, value`` rows of the model and the trivial baselines (test_results)."""
    return pd.DataFrame.from_records(
        {"method": method, "metric": m, "value": values[m]}
        for method, values in results.items()
        for m in METRIC_NAMES
        if m in values
    )
