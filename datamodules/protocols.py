"""Evaluation protocols: train / validation / test row ids of a :class:`FeatureTable`.

Subject-dependent protocols train one model per subject (fold ``i`` = the ``i``-th subject in
sorted id order) and split that subject's rows:

* ``random-window``: a random 20 % of the rows are test. By default (``split_rng="numpy"``) the
  permutation is the one scikit-learn's ``train_test_split(rows, test_size=0.2,
  random_state=seed)`` draws (``RandomState(seed).permutation``, the first ``ceil(0.2 n)`` rows
  are test). That is *not* the released HeLo code's split, which has the same sizes but other
  rows. ``split_rng="torch"`` draws HeLo's rows: ``torch.utils.data.random_split`` with
  ``torch.Generator().manual_seed(seed)`` and ``int(0.8 n)`` training rows (kaio-99/HeLo at
  08dad27, ``train.py`` lines 24-26), and keeps every part in ``random_split``'s order, so the
  test batches are the reference's. Overlapping windows of one clip land in both train and
  test, which leaks labels: report it beside a leakage-free protocol.
* ``temporal`` (the DMER authors' split): per clip, the first 80 % of the rows (by ``position``)
  train, the rest test.
* ``clip-holdout`` (leakage-free): 20 % of the subject's clips are test, whole, stratified by the
  clip ``category``.

Subject-independent protocols hold out whole subjects: ``loso`` (fold ``i`` = the ``i``-th
subject in sorted order is the test subject) and ``kfold`` (a seeded shuffle of the subjects cut
into ``k`` near-equal folds; fold ``i`` is test).

Validation rows are always carved from the training part only, in the protocol's own spirit:
random rows (random-window), the last rows of each clip's training part (temporal), whole clips
stratified by category (clip-holdout), whole subjects (loso, kfold). The validation size is
``ceil(val_fraction * n)`` of the ``n`` training units (rows, clip rows, clips or subjects), at
least one and never all of them; ``val_fraction = 0`` gives no validation rows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from datamodules.io import atomic_write_text
from datamodules.table import FeatureTable

Protocol = Literal["random-window", "temporal", "clip-holdout", "loso", "kfold"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
SUBJECT_DEPENDENT: frozenset[str] = frozenset({"random-window", "temporal", "clip-holdout"})
SUBJECT_INDEPENDENT: frozenset[str] = frozenset({"loso", "kfold"})
# The project's one default seed (HeLo's): splits, `seed_everything`, the protocol runners and the
# benchmarks all start from it. datamodules/ is the lowest layer, so the constant lives here.
DEFAULT_SEED = 3407
TEST_FRACTION = 0.2
SPLIT_NAMES = ("train", "val", "test")
SplitRNG = Literal["numpy", "torch"]
SPLIT_RNGS: tuple[str, ...] = get_args(SplitRNG)

# Tolerance for ceil(fraction * n): 0.2 * 15 is 3.0000000000000004 in floating point.
_EPS = 1e-9


@dataclass(frozen=True)
class Split:
    """Row ids (int64) of the three parts of one fold.

    Sorted ascending, except under ``random-window`` with ``split_rng="torch"``, whose parts are
    in ``torch.utils.data.random_split``'s order (the reference's test-batch order).
    """

    train: Tensor
    val: Tensor
    test: Tensor

    def as_dict(self) -> dict[str, Tensor]:
        """``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


def check_protocol(protocol: str) -> None:
    """Raise a ``ValueError`` naming the known protocols when ``protocol`` is not one of them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def num_folds(protocol: str, subjects: FeatureTable | Sequence[int], k: int = 5) -> int:
    """Number of folds of ``protocol``: ``k`` for kfold, else one per subject.

    Args:
        protocol: One of :data:`PROTOCOLS`.
        subjects: The table, or its subject ids.
        k: Number of folds of ``kfold``.

    Raises:
        ValueError: Unknown protocol, or ``k`` outside ``[2, number of subjects]``.
    """
    check_protocol(protocol)
    ids = subjects.subjects if isinstance(subjects, FeatureTable) else sorted(set(subjects))
    if not ids:
        raise ValueError("num_folds: there are no subjects")
    if protocol == "kfold":
        if not 2 <= k <= len(ids):
            raise ValueError(
                f"kfold needs 2 <= num_folds <= number of subjects ({len(ids)}), got {k}"
            )
        return k
    return len(ids)


def split_table(
    table: FeatureTable,
    protocol: str,
    fold: int = 0,
    *,
    k: int = 5,
    val_fraction: float = 0.1,
    seed: int = DEFAULT_SEED,
    test_fraction: float = TEST_FRACTION,
    split_rng: SplitRNG = "numpy",
) -> Split:
    """The train / validation / test row ids of one fold of ``protocol``.

    Args:
        table: The feature table (its ``subject``, ``trial``, ``category``, ``position``
            columns are used).
        protocol: One of :data:`PROTOCOLS` (see the module docstring).
        fold: Fold index in ``[0, num_folds(protocol, table, k))``.
        k: Number of folds of ``kfold``.
        val_fraction: Fraction of the training units moved to validation, in ``[0, 1)``.
        seed: Seed of every random choice (3407 by default, HeLo's).
        test_fraction: Test fraction of the subject-dependent protocols, in ``(0, 1)``.
        split_rng: Random generator of ``random-window``: ``numpy`` (scikit-learn's draw, the
            default) or ``torch`` (the released HeLo code's ``random_split``, its order kept).
            The other protocols ignore it.

    Returns:
        The three row-id tensors, disjoint; sorted unless ``random-window`` with ``torch``.
    """
    folds = num_folds(protocol, table, k)
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is out of range for {protocol!r}: expected 0..{folds - 1}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if split_rng not in SPLIT_RNGS:
        raise ValueError(f"split_rng must be one of {list(SPLIT_RNGS)}, got {split_rng!r}")
    subject = table.subject.numpy()
    ids = np.asarray(table.subjects, dtype=np.int64)
    if protocol in SUBJECT_DEPENDENT:
        rows = np.flatnonzero(subject == ids[fold])
        if protocol == "random-window" and split_rng == "torch":
            parts = _random_window_torch(rows, val_fraction, seed, test_fraction)
            return Split(*(torch.from_numpy(p.astype(np.int64)) for p in parts))
        if protocol == "random-window":
            parts = _random_window(rows, val_fraction, seed, test_fraction)
        elif protocol == "temporal":
            parts = _temporal(table, rows, val_fraction, test_fraction)
        else:
            rng = np.random.default_rng([seed, int(ids[fold])])
            parts = _clip_holdout(table, rows, val_fraction, test_fraction, rng)
    else:
        if protocol == "loso":
            test_subjects = ids[fold : fold + 1]
            rng = np.random.default_rng([seed, int(ids[fold])])
        else:
            order = np.random.default_rng(seed).permutation(ids)
            test_subjects = np.array_split(order, k)[fold]
            rng = np.random.default_rng([seed, k, fold])
        train_subjects = np.setdiff1d(ids, test_subjects)
        val_subjects = _choose(train_subjects, _val_count(val_fraction, len(train_subjects)), rng)
        parts = (
            np.flatnonzero(np.isin(subject, np.setdiff1d(train_subjects, val_subjects))),
            np.flatnonzero(np.isin(subject, val_subjects)),
            np.flatnonzero(np.isin(subject, test_subjects)),
        )
    train, val, test = (torch.from_numpy(np.sort(p).astype(np.int64)) for p in parts)
    return Split(train=train, val=val, test=test)


def _ceil_count(fraction: float, n: int) -> int:
    return math.ceil(fraction * n - _EPS)


def _val_count(fraction: float, n: int) -> int:
    """``ceil(fraction * n)`` clamped to ``[1, n - 1]``; 0 when there is nothing to spare."""
    if fraction <= 0.0 or n < 2:
        return 0
    return min(max(_ceil_count(fraction, n), 1), n - 1)


def _choose(items: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(items)[:count])


def _rank_within_groups(groups: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, its 0-based rank by ``keys`` within its group, and its group's size.

    ``groups`` are dense group indices ``0..G-1``.
    """
    order = np.lexsort((keys, groups))
    counts = np.bincount(groups)
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - starts[groups[order]]
    return rank, counts[groups]


def _random_window(
    rows: np.ndarray, val_fraction: float, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # RandomState, not Generator, and plain ceil: the exact draw of scikit-learn's ShuffleSplit.
    random_state = np.random.RandomState(seed)
    permutation = random_state.permutation(len(rows))
    n_test = math.ceil(test_fraction * len(rows))
    test, train = rows[permutation[:n_test]], rows[permutation[n_test:]]
    n_val = _val_count(val_fraction, len(train))
    val_pick = random_state.permutation(len(train))[:n_val]
    keep = np.ones(len(train), dtype=bool)
    keep[val_pick] = False
    return train[keep], train[val_pick], test


def _random_window_torch(
    rows: np.ndarray, val_fraction: float, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The released HeLo code's split, parts in ``random_split`` order (not sorted).

    ``random_split(range(n), [int(0.8 n), n - int(0.8 n)], generator=Generator().manual_seed(s))``
    is ``randperm(n, generator)`` cut after the training size: the first part trains, the rest
    tests. The reference has no validation rows; with ``val_fraction > 0`` they are drawn from
    the training part by the same generator's next permutation.
    """
    generator = torch.Generator().manual_seed(seed)
    # int(), not ceil: the reference computes int(train_size * len(dataset)) (train.py line 24).
    n_train = int((1.0 - test_fraction) * len(rows))
    order = torch.randperm(len(rows), generator=generator).numpy()
    train, test = rows[order[:n_train]], rows[order[n_train:]]
    n_val = _val_count(val_fraction, len(train))
    if n_val == 0:
        return train, train[:0], test
    is_val = np.zeros(len(train), dtype=bool)
    is_val[torch.randperm(len(train), generator=generator)[:n_val].numpy()] = True
    return train[~is_val], train[is_val], test


def _temporal(
    table: FeatureTable, rows: np.ndarray, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, clip = np.unique(table.trial.numpy()[rows], return_inverse=True)
    rank, size = _rank_within_groups(clip, table.position.numpy()[rows])
    n_test = np.ceil(test_fraction * size - _EPS).astype(np.int64)
    n_train = size - n_test
    if val_fraction > 0.0:
        n_val = np.clip(np.ceil(val_fraction * n_train - _EPS), 1, n_train - 1)
        n_val = np.where(n_train >= 2, n_val, 0).astype(np.int64)
    else:
        n_val = np.zeros_like(n_train)
    in_train_part = rank < n_train
    is_val = in_train_part & (rank >= n_train - n_val)
    return rows[in_train_part & ~is_val], rows[is_val], rows[~in_train_part]


def _stratified_pick(strata: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask picking ``total`` units, allocated to strata in proportion to their size.

    Largest-remainder allocation: each stratum gets ``floor(total * n_s / n)``, and the units
    still missing go to the strata with the largest fractional parts (ties broken at random).
    Within a stratum the picked units are random.
    """
    _, stratum, counts = np.unique(strata, return_inverse=True, return_counts=True)
    share = total * counts / len(strata)
    alloc = np.floor(share + _EPS).astype(np.int64)
    missing = total - int(alloc.sum())
    if missing > 0:
        by_remainder = np.lexsort((rng.random(len(counts)), -(share - alloc)))
        alloc[by_remainder[:missing]] += 1
    alloc = np.minimum(alloc, counts)
    rank, _ = _rank_within_groups(stratum, rng.random(len(strata)))
    return rank < alloc[stratum]


def _clip_holdout(
    table: FeatureTable,
    rows: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    trial = table.trial.numpy()[rows]
    category = table.category.numpy()[rows]
    clips, first_row, clip_of_row = np.unique(trial, return_index=True, return_inverse=True)
    clip_category = category[first_row]
    if np.any(category != clip_category[clip_of_row]):
        raise ValueError("clip-holdout: a trial's rows have different categories")
    test_clip = _stratified_pick(clip_category, _ceil_count(test_fraction, len(clips)), rng)
    val_clip = np.zeros(len(clips), dtype=bool)
    train_clips = np.flatnonzero(~test_clip)
    n_val = _val_count(val_fraction, len(train_clips))
    if n_val:
        val_clip[train_clips[_stratified_pick(clip_category[train_clips], n_val, rng)]] = True
    is_test, is_val = test_clip[clip_of_row], val_clip[clip_of_row]
    return rows[~is_test & ~is_val], rows[is_val], rows[is_test]


def describe_split(
    table: FeatureTable,
    split: Split,
    *,
    protocol: str,
    fold: int,
    seed: int,
    num_folds: int | None = None,
    val_fraction: float | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable record of a split, to be written next to the results.

    Returns:
        ``{"dataset", "protocol", "fold", "num_folds", "seed", "val_fraction", "num_rows",
        "splits": {name: {"num_rows", "subjects", "trials", "rows"}}}`` where ``trials`` maps
        each subject id (as a string, JSON keys are strings) to its sorted trial ids in that
        part and ``rows`` are the row ids of the table.
    """
    subject, trial = table.subject.numpy(), table.trial.numpy()
    parts: dict[str, Any] = {}
    for name, rows in split.as_dict().items():
        ids = rows.numpy()
        pairs = np.unique(np.stack([subject[ids], trial[ids]], axis=1), axis=0)
        subjects, starts = np.unique(pairs[:, 0], return_index=True)
        per_subject = np.split(pairs[:, 1], starts[1:]) if len(pairs) else []
        parts[name] = {
            "num_rows": len(ids),
            "subjects": subjects.tolist(),
            "trials": {str(s): t.tolist() for s, t in zip(subjects, per_subject, strict=True)},
            "rows": ids.tolist(),
        }
    return {
        "dataset": dataset,
        "protocol": protocol,
        "fold": fold,
        "num_folds": num_folds,
        "seed": seed,
        "val_fraction": val_fraction,
        "num_rows": len(table),
        "splits": parts,
    }


def write_split_file(path: str | os.PathLike[str], description: dict[str, Any]) -> Path:
    """Write a :func:`describe_split` record as JSON, atomically (temporary file, then rename)."""
    return atomic_write_text(path, json.dumps(description) + "\n")
