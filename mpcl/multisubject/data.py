"""Per-subject splits of a subject-dependent protocol, and stacked batches over all subjects.

A subject-dependent protocol trains one model per subject: fold ``i`` is the ``i``-th subject in
sorted id order, its rows are split into train / validation / test, and its features are
standardised with the statistics of *its* training rows. :func:`build_subject_splits` reproduces
exactly that for every requested fold from one loaded table: it restricts the table to the
subject and runs the configured datamodule's own :meth:`FeatureDataModule.setup` on it (the split
of a subject-dependent fold depends only on that subject's rows, so fold 0 of the one-subject
table is fold ``i`` of the full table). Row ids (``index``) stay those of the full table.

:class:`StackedRows` concatenates one split of every subject and serves
``[S, B, ...]`` batches by one gather per column.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from datamodules.base import FeatureDataModule
from datamodules.batches import InMemoryBatches
from datamodules.metadata import DatasetMetadata
from datamodules.protocols import SUBJECT_DEPENDENT
from datamodules.table import FeatureTable

SPLITS = ("train", "val", "test")
# The base datamodule's parameters: what a one-subject datamodule copies from the configured one.
BASE_PARAMETERS = tuple(
    name for name in inspect.signature(FeatureDataModule.__init__).parameters if name != "self"
)


class _OneSubjectDataModule(FeatureDataModule):
    """The configured datamodule's split and standardisation, applied to one subject's rows.

    Every parameter of :class:`FeatureDataModule` is taken from the configured datamodule by
    name (the base class stores each under its own name), so a setting added to the base class
    reaches the many-subjects path without being listed here. Only two differ: ``fold`` is 0
    (the one subject of the table) and ``split_file`` names the subject's own file.
    """

    def __init__(self, table: FeatureTable, source: FeatureDataModule, fold: int) -> None:
        settings = {name: getattr(source, name) for name in BASE_PARAMETERS}
        settings["fold"] = 0
        if source.split_file is not None:
            path = Path(source.split_file)
            settings["split_file"] = str(
                path.with_name(f"{path.stem}-fold-{fold:02d}{path.suffix}")
            )
        super().__init__(**settings)
        self._subject_table = table
        self._source_metadata = source.metadata

    @property
    def metadata(self) -> DatasetMetadata:
        """The source datamodule's metadata."""
        return self._source_metadata

    def load_table(self) -> FeatureTable:
        """The subject's rows (unstandardised)."""
        return self._subject_table


@dataclass
class SubjectSplit:
    """One subject's model data: its fold, and its three standardised batch tables.

    Attributes:
        fold: The fold index of the protocol (the subject's rank in sorted id order).
        subject: The data set's subject id.
        tables: ``train`` / ``val`` / ``test`` -> batch table (modalities, ``target``,
            ``subject``, ``trial``, ``index`` = row id in the full table).
        train_target_mean: Mean training target ``[C]`` (the ``train-mean`` baseline).
        datamodule_state: The datamodule's ``state_dict`` for this subject (its standardisation
            statistics), saved in the subject's checkpoints as a one-model run saves it.
    """

    fold: int
    subject: int
    tables: dict[str, dict[str, Tensor]]
    train_target_mean: Tensor
    datamodule_state: dict[str, Any] = field(default_factory=dict)

    def num_rows(self, split: str) -> int:
        """Rows of ``split``."""
        return len(self.tables[split]["target"])


def build_subject_splits(
    datamodule: FeatureDataModule, folds: Sequence[int] | None = None
) -> list[SubjectSplit]:
    """Every requested fold's subject split, from one read of the data set.

    Args:
        datamodule: The configured datamodule (its protocol must be subject-dependent; its
            ``fold`` is ignored).
        folds: Folds (= subject ranks) to build; default all.

    Returns:
        One :class:`SubjectSplit` per fold, in the given order.

    Raises:
        ValueError: A subject-independent protocol, a fold out of range, or a fold without
            training rows.
    """
    if datamodule.protocol not in SUBJECT_DEPENDENT:
        raise ValueError(
            f"{type(datamodule).__name__}.protocol is {datamodule.protocol!r}: training many "
            f"subjects at once needs a subject-dependent protocol {sorted(SUBJECT_DEPENDENT)}"
        )
    table = datamodule.load_table()
    subjects = table.subjects
    folds = list(range(len(subjects))) if folds is None else [int(f) for f in folds]
    bad = [f for f in folds if not 0 <= f < len(subjects)]
    if bad:
        raise ValueError(
            f"folds {bad} out of range: protocol {datamodule.protocol!r} has {len(subjects)} "
            f"folds (one per subject)"
        )
    out = []
    for fold in folds:
        rows = torch.nonzero(table.subject == subjects[fold]).squeeze(1)
        one = _OneSubjectDataModule(table.select(rows), datamodule, fold)
        one.setup()
        tables = {
            name: one.table.select(local).as_batch_table(rows[local])
            for name, local in one.splits.items()
        }
        out.append(
            SubjectSplit(fold, subjects[fold], tables, one.train_target_mean(), one.state_dict())
        )
    return out


def _concat(parts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.cat([p[key] for p in parts]).contiguous() for key in parts[0]}


class StackedRows:
    """One split of S subjects in one table, gathered into ``[S, B, ...]`` batches.

    Args:
        subjects: The subjects' splits (model ``s`` is ``subjects[s]``).
        split: ``train``, ``val`` or ``test``.
        device: Where the rows live.
    """

    def __init__(
        self, subjects: Sequence[SubjectSplit], split: str, device: torch.device | str = "cpu"
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"StackedRows: split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.subjects = list(subjects)
        self.counts = torch.tensor([s.num_rows(split) for s in subjects], dtype=torch.int64)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.table = {
            k: v.to(device) for k, v in _concat([s.tables[split] for s in subjects]).items()
        }
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.subjects)

    def gather(self, rows: Tensor) -> dict[str, Tensor]:
        """The batch of global row ids ``rows`` ``[G, B]``: every column as ``[G, B, ...]``."""
        flat = rows.reshape(-1).to(self.device)
        return {
            key: value.index_select(0, flat).view(*rows.shape, *value.shape[1:])
            for key, value in self.table.items()
        }

    def epoch_rows(self, batch_size: int, seed: int, epoch: int) -> Tensor:
        """Each subject's shuffled training order of ``epoch``, cut into batches.

        Subject ``s`` visits its rows in the order that :class:`InMemoryBatches` (the
        one-model-per-run data path) draws for the same seed and epoch, so a model sees the same
        batches as when trained alone.

        Returns:
            Global row ids ``[S, steps, batch_size]``, ``-1`` where a subject has no row (its
            epoch has ended or its last batch is short); ``steps`` is the largest subject's.
        """
        steps = int(torch.ceil(self.counts.max() / batch_size)) if len(self) else 0
        out = torch.full((len(self), steps * batch_size), -1, dtype=torch.int64)
        for s, subject in enumerate(self.subjects):
            batches = InMemoryBatches(
                subject.tables[self.split], batch_size, shuffle=True, seed=seed
            )
            batches.set_epoch(epoch)
            order = batches.indices()
            out[s, : len(order)] = order + self.offsets[s]
        return out.view(len(self), steps, batch_size)

    def padded_rows(self) -> tuple[Tensor, Tensor]:
        """All rows of every subject as ``[S, N_max]`` global ids and the validity mask.

        Padding repeats the subject's first row (masked out), so every gathered row is real.
        """
        width = int(self.counts.max()) if len(self) else 0
        local = torch.arange(width).expand(len(self), width)
        mask = local < self.counts[:, None]
        rows = torch.where(mask, local, torch.zeros_like(local)) + self.offsets[:, None]
        return rows, mask


def step_groups(rows: Tensor, keys: Tensor | None = None) -> Iterator[tuple[Tensor, int]]:
    """Split one step's ``[S, B]`` row ids (``-1`` = no row) into groups of equal batch size.

    Models whose batch this step has ``n`` rows (and, with ``keys``, the same key) form one
    group, so one vectorised call serves them with no padding (padding would change the models'
    batch means and memory updates).

    Args:
        rows: Global row ids ``[S, B]`` of one step.
        keys: Optional ``[S]`` integer key that must also agree within a group (the models'
            random-stream ids).

    Yields:
        The models of a group (indices into ``S``) and their batch size ``n``.
    """
    sizes = (rows >= 0).sum(dim=1)
    keys = torch.zeros_like(sizes) if keys is None else keys.to(sizes.device)
    active = sizes > 0
    pairs = torch.stack([sizes[active], keys[active]], dim=1)
    for size, key in torch.unique(pairs, dim=0).tolist():
        members = torch.nonzero(active & (sizes == size) & (keys == key)).squeeze(1)
        yield members, int(size)


def chunks(members: Tensor, max_group: int | None) -> Iterator[Tensor]:
    """``members`` cut into pieces of at most ``max_group`` (``None``: one piece)."""
    size = len(members) if max_group is None else max_group
    for start in range(0, len(members), max(size, 1)):
        yield members[start : start + size]
