"""What a many-subjects run writes: per-subject checkpoints and test results, and the run tables.

The layout is the protocol runner's (:mod:`mpcl.runner.run`), so ``mpcl-protocol compare`` and
:mod:`mpcl.runner.aggregate` read it unchanged::

    run_info.json                 configs, overrides, protocol, settings, timings, provenance
    folds.csv                     one row per (method, fold, seed): the model and the baselines
    summary.md / summary.csv      mean ± std over folds
    epochs-seed-S.csv             per (fold, epoch): learning rate, train/... and val/... values
    fold-XX-seed-S/
        checkpoints/best-EEE.ckpt the subject's best state, a Lightning checkpoint
        checkpoints/last.ckpt     the final state (with --save-last)
        test_results.json / .md   as the one-model run's test report writes them
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning
import pandas as pd
import torch
from torch import Tensor

from mpcl.io import atomic_write_text
from mpcl.models.base import EmotionDistributionModule
from mpcl.multisubject.data import SubjectSplit
from mpcl.multisubject.trainer import per_sample_metrics
from mpcl.runner.aggregate import FOLDS_FILE, METRIC_NAMES, comparison_table, per_fold_means
from mpcl.runner.run import RESULTS_FILE, fold_dir_name
from mpcl.tables import markdown_table


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def lightning_checkpoint(
    module: EmotionDistributionModule,
    state_dict: Mapping[str, Tensor],
    epoch: int,
    global_step: int,
    datamodule_state: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A checkpoint that ``mpcl test|predict --ckpt_path`` and :mod:`mpcl.export` accept.

    Only plain Python and tensors, so it loads with ``torch.load(weights_only=True)``.

    Args:
        module: The template module (its hyper-parameters, with LightningCLI's class path).
        state_dict: The subject model's tensors.
        epoch: Epoch of the state.
        global_step: Optimisation steps taken.
        datamodule_state: Datamodule class name -> its ``state_dict`` (the standardisation
            statistics), stored under the class name as Lightning stores it.
    """
    checkpoint = {
        "epoch": int(epoch),
        "global_step": int(global_step),
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": dict(state_dict),
        "hyper_parameters": dict(module.hparams),
    }
    for name, state in (datamodule_state or {}).items():
        if state:
            checkpoint[name] = dict(state)
    return checkpoint


def save_checkpoint(path: Path, checkpoint: Mapping[str, Any]) -> Path:
    """``torch.save`` into memory, then one atomic write."""
    buffer = io.BytesIO()
    torch.save(dict(checkpoint), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def subject_results(
    model_name: str, preds_metrics: Mapping[str, float], subject: SubjectSplit
) -> dict[str, dict[str, float]]:
    """The model's test metrics beside the ``train-mean`` and ``uniform`` baselines."""
    target = subject.tables["test"]["target"]
    num_emotions = target.shape[-1]
    baselines = {
        "train-mean": subject.train_target_mean.float(),
        "uniform": torch.full((num_emotions,), 1.0 / num_emotions),
    }
    results = {model_name: dict(preds_metrics)}
    for name, pred in baselines.items():
        values = per_sample_metrics(pred.expand_as(target)[None], target[None])
        results[name] = {k: float(v.mean()) for k, v in values.items()}
    return results


def write_subject_results(
    fold_dir: Path,
    model_name: str,
    results: Mapping[str, Mapping[str, float]],
    num_samples: int,
    ckpt_path: Path | None,
) -> Path:
    """``test_results.json`` and ``.md`` in the format of :class:`TestResultsReport`."""
    payload = {
        "model": model_name,
        "num_samples": num_samples,
        "world_size": 1,
        "ckpt_path": str(ckpt_path) if ckpt_path else None,
        "results": {k: dict(v) for k, v in results.items()},
    }
    path = atomic_write_text(fold_dir / RESULTS_FILE, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(path.with_suffix(".md"), markdown_table(payload["results"]) + "\n")
    return path


def fold_rows(
    results: Mapping[str, Mapping[str, float]],
    model_name: str,
    label: str | None,
    subject: SubjectSplit,
    seed: int,
    extra: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """``folds.csv`` rows of one subject: the model (labelled ``label``) and the baselines."""
    rows = []
    for method, values in results.items():
        rows.append(
            {
                "method": (label or method) if method == model_name else method,
                "fold": subject.fold,
                "seed": seed,
                "subject": subject.subject,
                "num_samples": subject.num_rows("test"),
                **{m: values.get(m) for m in METRIC_NAMES},
                **extra,
            }
        )
    return rows


def write_tables(output_dir: Path, frame: pd.DataFrame, protocol: str, seeds: Sequence[int]) -> str:
    """``folds.csv``, ``summary.md`` and ``summary.csv``; returns the summary text."""
    atomic_write_text(output_dir / FOLDS_FILE, frame.to_csv(index=False))
    methods = list(dict.fromkeys(frame["method"]))
    text, long_form = comparison_table({m: per_fold_means(frame, m) for m in methods})
    header = (
        f"Protocol `{protocol}` (many subjects at once), {frame['fold'].nunique()} folds, "
        f"seeds {list(seeds)}\n\n"
    )
    atomic_write_text(output_dir / "summary.md", header + text + "\n")
    atomic_write_text(output_dir / "summary.csv", long_form.to_csv(index=False))
    return header + text


def fold_dir(output_dir: Path, fold: int, seed: int) -> Path:
    """The per-subject folder, named as the protocol runner names it."""
    return output_dir / fold_dir_name(fold, seed)
