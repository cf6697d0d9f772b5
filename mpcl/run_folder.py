"""The one place that knows what a run folder holds and where: read by the report, written at test.

A **run** (``mpcl fit ... --test_after_fit true``) writes, in its log folder
``runs/<name>/version_N/``::

    config.yaml             the resolved LightningCLI config
    metrics.csv             the CSV logger's per-epoch values (absent with another logger)
    checkpoints/            best-<epoch>.ckpt and last.ckpt
    test_results.json       six metrics of the model and the trivial baselines (-1, -2 on reruns)
    test_outputs.npz        one row per test window: prediction, target, ids, model internals
    test_outputs.json       what the arrays mean: emotion names, valence groups, categories ...

A **protocol run** (``mpcl-protocol run``) holds ``run_info.json``, ``folds.csv`` and one folder per
(fold, seed), ``fold-KK-seed-S/``, with ``test_results.json`` and ``test_outputs.*`` at its top and
the logs one level down (``<logger name>/version_N/``; a resumed fold has several versions).

Only this module builds these paths; :mod:`mpcl.report` reads a run through :func:`open_run`, and
:class:`~mpcl.callbacks.test_outputs.TestOutputsWriter` writes through :func:`write_test_outputs`.
Arrays are stored without pickle and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mpcl.io import atomic_write, atomic_write_text, unused_path

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
RESULTS_STEM = "test_results"
OUTPUTS_STEM = "test_outputs"
FOLDS_FILE = "folds.csv"
RUN_INFO_FILE = "run_info.json"
#: Arrays every ``test_outputs.npz`` holds, one row per test window.
REQUIRED_ARRAYS = ("preds", "target", "subject", "trial", "index")
_BEST_EPOCH = re.compile(r"best-(\d+)")
_NUMBERED = re.compile(r"-(\d+)$")


def _numbered(stem: str, folder: Path, suffix: str) -> list[Path]:
    """``stem.suffix``, ``stem-1.suffix`` ... in ``folder``, in the order they were written."""
    found = []
    for path in folder.glob(f"{stem}*{suffix}"):
        rest = path.name[len(stem) : -len(suffix)]
        if rest == "":
            found.append((0, path))
        elif (match := _NUMBERED.fullmatch(rest)) is not None:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


# --------------------------------------------------------------------------- test outputs
@dataclass
class TestOutputs:
    """The saved test pass of one run: per-window arrays and their description.

    Attributes:
        arrays: ``preds`` / ``target`` ``[N, C]``, ``subject`` / ``trial`` / ``index`` ``[N]``,
            optionally ``category`` ``[N]`` and model internals (``cooccurrence`` ``[N, C, C]``,
            ``scale_gate_<branch>`` ``[N, S]``, ``branch_gate`` ``[N, C]``, ``relations_<branch>``
            ``[N, C, C-1]``, ``embedding_<branch>`` ``[M, D]`` for the rows ``embedding_rows``,
            ``bank_<branch>`` ``[C, K, D]``, ``scales_<branch>`` ``[S]``).
        meta: ``model``, ``emotion_names``, ``valence_groups``, ``category_names``,
            ``physiological`` / ``behavioral`` modalities, ``dataset``.
        path: The ``.npz`` file read.
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def emotion_names(self) -> list[str]:
        """The C emotion names, in column order."""
        return list(self.meta["emotion_names"])

    @property
    def valence_groups(self) -> list[int]:
        """Valence group of each emotion (0 positive, 1 negative by convention)."""
        return [int(g) for g in self.meta["valence_groups"]]

    @property
    def category_names(self) -> dict[int, str]:
        """Name of each trial category code (DMER: positive / negative / mixed clip)."""
        return {int(k): str(v) for k, v in (self.meta.get("category_names") or {}).items()}

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def __contains__(self, key: object) -> bool:
        return key in self.arrays


def write_test_outputs(
    folder: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Write ``test_outputs.npz`` and ``.json`` atomically; a second test gets ``-1``, ``-2`` ...

    Args:
        folder: Where the run's ``test_results.json`` goes.
        arrays: Numeric arrays (no object arrays: they would need pickle).
        meta: JSON-serialisable description of the arrays.

    Returns:
        The ``.npz`` path.
    """
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"write_test_outputs: arrays {missing} are missing")
    bad = [k for k, v in arrays.items() if np.asarray(v).dtype == object]
    if bad:
        raise TypeError(f"write_test_outputs: arrays {bad} are object arrays; expected numbers")
    path = unused_path(Path(folder) / f"{OUTPUTS_STEM}.npz")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_text(path.with_suffix(".json"), json.dumps(dict(meta), indent=2) + "\n")
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def read_test_outputs(path: str | Path) -> TestOutputs:
    """Read a ``test_outputs.npz`` and its ``.json`` (``allow_pickle=False``), checking shapes."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: missing; it describes the arrays of {path.name}")
    meta = json.loads(meta_path.read_text())
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: arrays {missing} are missing; expected {list(REQUIRED_ARRAYS)}")
    n, c = arrays["preds"].shape
    if arrays["target"].shape != (n, c) or len(meta.get("emotion_names", [])) != c:
        raise ValueError(
            f"{path}: 'preds' is {[n, c]} but 'target' is {list(arrays['target'].shape)} and "
            f"{meta_path.name} names {len(meta.get('emotion_names', []))} emotions; expected "
            "one column per emotion"
        )
    return TestOutputs(arrays, meta, path)


# --------------------------------------------------------------------------- runs
@dataclass
class RunFolder:
    """One trained and tested model: a log folder, or one fold of a protocol run.

    Attributes:
        root: The folder holding ``test_results.json``.
        log_dirs: Logger folders (``version_N``) of this run, oldest first.
    """

    root: Path
    log_dirs: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A label: ``<name>/version_N`` for a log folder, the fold folder's name otherwise."""
        if self.root.name.startswith("version_"):
            return f"{self.root.parent.name}/{self.root.name}"
        return self.root.name

    def results_path(self) -> Path:
        """The newest ``test_results*.json``."""
        found = _numbered(RESULTS_STEM, self.root, ".json")
        if not found:
            raise FileNotFoundError(
                f"{self.root}: no {RESULTS_STEM}.json; test the run first "
                "(mpcl fit ... --test_after_fit true, or mpcl test)"
            )
        return found[-1]

    def results(self) -> dict[str, Any]:
        """The newest test results: ``model``, ``num_samples``, ``ckpt_path``, ``results``."""
        return json.loads(self.results_path().read_text())

    def outputs_path(self) -> Path | None:
        """The newest ``test_outputs*.npz``, or ``None`` (a run tested before they existed)."""
        found = _numbered(OUTPUTS_STEM, self.root, ".npz")
        return found[-1] if found else None

    def test_outputs(self) -> TestOutputs | None:
        """The saved test pass, or ``None``."""
        path = self.outputs_path()
        return None if path is None else read_test_outputs(path)

    def config(self) -> dict[str, Any]:
        """The resolved config (``{}`` when none was saved)."""
        for folder in reversed(self.log_dirs):
            if (folder / CONFIG_FILE).is_file():
                return yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
        return {}

    def metrics(self) -> pd.DataFrame | None:
        """Per-epoch logged values, one row per epoch (every version of a resumed run joined).

        The CSV logger writes train and val values of one epoch on separate rows; they are merged
        (first non-empty value per column). A resumed run's later version wins for an epoch both
        logged. ``None`` without a CSV log.
        """
        frames = []
        for order, folder in enumerate(self.log_dirs):
            path = folder / METRICS_FILE
            if path.is_file() and path.stat().st_size > 0:
                frame = pd.read_csv(path)
                if "epoch" in frame:
                    frames.append(frame.assign(_version=order))
        if not frames:
            return None
        frame = pd.concat(frames, ignore_index=True)
        frame = frame.dropna(subset=["epoch"])
        last = frame.groupby("epoch")["_version"].transform("max")
        frame = frame[frame["_version"] == last].drop(columns=["_version", "step"], errors="ignore")
        merged = frame.groupby("epoch", sort=True).first()
        merged.index = merged.index.astype(int)
        return merged

    def selected_epoch(self) -> int | None:
        """The epoch of the tested checkpoint (``best-<epoch>.ckpt``), or ``None``."""
        try:
            ckpt = self.results().get("ckpt_path") or ""
        except FileNotFoundError:
            return None
        match = _BEST_EPOCH.search(Path(ckpt).name)
        return int(match.group(1)) if match else None


@dataclass
class ProtocolFolder:
    """A protocol run: ``folds.csv``, ``run_info.json`` and one :class:`RunFolder` per fold."""

    root: Path

    @property
    def name(self) -> str:
        """The folder's name (the configuration's label)."""
        return self.root.name

    def folds(self) -> pd.DataFrame:
        """One row per (method, fold, seed) with the six metrics."""
        path = self.root / FOLDS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no per-fold results; run `mpcl-protocol run` first")
        return pd.read_csv(path)

    def run_info(self) -> dict[str, Any]:
        """The protocol, configs and seeds of the run (``{}`` when absent)."""
        path = self.root / RUN_INFO_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def fold_runs(self) -> list[RunFolder]:
        """The finished folds (those with test results), in folder order."""
        runs = []
        for folder in sorted(self.root.glob("fold-*")):
            if folder.is_dir() and _numbered(RESULTS_STEM, folder, ".json"):
                runs.append(RunFolder(folder, _log_dirs_below(folder)))
        return runs


def _version_number(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _log_dirs_below(folder: Path) -> list[Path]:
    """Logger folders ``<name>/version_N`` inside a fold folder, oldest first."""
    found = [p for p in folder.glob("*/version_*") if p.is_dir()]
    return sorted(found, key=lambda p: (_version_number(p), p.stat().st_mtime))


def open_run(path: str | Path) -> RunFolder | ProtocolFolder:
    """Open a run folder, a protocol run folder, or a logger folder (its newest tested version).

    Args:
        path: ``runs/<name>/version_N``, ``runs/<name>`` (the newest version with test results),
            a protocol run folder (with ``folds.csv``) or one of its fold folders.

    Raises:
        FileNotFoundError: Nothing of the above is there.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder; expected a run or protocol run folder")
    if (path / FOLDS_FILE).is_file():
        return ProtocolFolder(path)
    if _numbered(RESULTS_STEM, path, ".json"):
        below = _log_dirs_below(path)
        return RunFolder(path, below or [path])
    versions = [
        p for p in path.glob("version_*") if p.is_dir() and _numbered(RESULTS_STEM, p, ".json")
    ]
    if versions:
        newest = max(versions, key=_version_number)
        return RunFolder(newest, [newest])
    raise FileNotFoundError(
        f"{path}: neither a run folder (with {RESULTS_STEM}.json), a folder of tested "
        f"version_N runs, nor a protocol run folder (with {FOLDS_FILE})"
    )
