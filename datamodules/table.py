"""The in-memory feature table that every datamodule builds from its files.

One row is one window (DMER: one 1-s step of a clip; WESAD: one window of a study condition).
Protocols split a table by its ``subject`` / ``trial`` / ``category`` / ``position`` columns;
batches are rows of it (see :mod:`datamodules.batches`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class FeatureTable:
    """Rows of windows with their features, target distribution and bookkeeping ids.

    Attributes:
        features: Per modality, a float32 tensor ``[N, *shape]``.
        target: Float32 ``[N, C]``; every row is a probability distribution.
        subject: Int64 ``[N]``: the data set's own subject id of each row.
        trial: Int64 ``[N]``: the trial of each row within its subject (DMER: clip id 0-31;
            WESAD: condition code). Rows of one (subject, trial) share a target.
        category: Int64 ``[N]``: the trial's stratum for stratified hold-outs (DMER: 0 positive,
            1 negative, 2 mixed clip; WESAD: the condition).
        position: Int64 ``[N]``: the row's order within its trial (0, 1, ...), for temporal splits.
        present: Per modality, bool ``[N]``: False where the file has no values for it (see
            :mod:`datamodules.modality_mask`); a modality without an entry is present everywhere.
    """

    features: dict[str, Tensor]
    target: Tensor
    subject: Tensor
    trial: Tensor
    category: Tensor
    position: Tensor
    present: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.target)
        columns: Mapping[str, Tensor] = {
            **{f"features[{k!r}]": v for k, v in self.features.items()},
            "subject": self.subject,
            "trial": self.trial,
            "category": self.category,
            "position": self.position,
            **{f"present[{k!r}]": v for k, v in self.present.items()},
        }
        bad = {name: len(col) for name, col in columns.items() if len(col) != n}
        if bad:
            raise ValueError(f"FeatureTable: target has {n} rows but {bad}")

    def __len__(self) -> int:
        return len(self.target)

    @property
    def subjects(self) -> list[int]:
        """The distinct subject ids, sorted."""
        return [int(s) for s in torch.unique(self.subject)]

    def select(self, rows: Tensor) -> FeatureTable:
        """The sub-table of the given row ids (a gather per column)."""
        return FeatureTable(
            features={k: v[rows] for k, v in self.features.items()},
            target=self.target[rows],
            subject=self.subject[rows],
            trial=self.trial[rows],
            category=self.category[rows],
            position=self.position[rows],
            present={k: v[rows] for k, v in self.present.items()},
        )

    @staticmethod
    def concat(tables: Sequence[FeatureTable]) -> FeatureTable:
        """Stack tables row-wise (e.g. one per subject file) into one contiguous table."""
        if not tables:
            raise ValueError("FeatureTable.concat: no tables to concatenate")
        keys = list(tables[0].features)
        return FeatureTable(
            features={k: torch.cat([t.features[k] for t in tables]).contiguous() for k in keys},
            target=torch.cat([t.target for t in tables]).contiguous(),
            subject=torch.cat([t.subject for t in tables]),
            trial=torch.cat([t.trial for t in tables]),
            category=torch.cat([t.category for t in tables]),
            position=torch.cat([t.position for t in tables]),
            present=_concat_presence(tables, keys),
        )

    def as_batch_table(self, row_ids: Tensor | None = None) -> dict[str, Tensor]:
        """The columns a batch carries: modalities, ``target``, ``subject``, ``trial``, ``index``.

        ``index`` is the row's id in this table, so that predictions can be traced back to rows
        and a distributed evaluation can be checked to score each row exactly once.
        """
        index = torch.arange(len(self)) if row_ids is None else row_ids
        return {
            **self.features,
            **{f"present:{k}": v for k, v in self.present.items()},
            "target": self.target,
            "subject": self.subject,
            "trial": self.trial,
            "index": index,
        }


def _concat_presence(tables: Sequence[FeatureTable], keys: Sequence[str]) -> dict[str, Tensor]:
    """Presence columns of stacked tables; a table without one is present in every row."""
    present = {}
    for key in keys:
        if any(key in t.present for t in tables):
            present[key] = torch.cat(
                [t.present.get(key, torch.ones(len(t), dtype=torch.bool)) for t in tables]
            )
    return present
