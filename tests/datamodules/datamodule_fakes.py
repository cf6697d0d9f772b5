"""Test doubles of the datamodule tests: small tables built in memory and a toy datamodule."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.base import FeatureDataModule
from datamodules.metadata import DatasetMetadata
from datamodules.table import FeatureTable


def make_table(
    subjects=(2, 5, 7, 11, 12, 20),
    categories=(0,) * 4 + (1,) * 4 + (2,) * 7,
    rows=(3, 9),
    seed=0,
    shuffle_rows=True,
):
    """A table with clips of varying lengths; rows in random order (positions still correct).

    Feature ``x`` holds ``[row id, subject, trial]`` so that tests can check what was moved where.
    """
    rng = np.random.default_rng(seed)
    subject, trial, category, position = [], [], [], []
    for s in subjects:
        for clip, cat in enumerate(categories):
            n = int(rng.integers(rows[0], rows[1] + 1))
            subject += [s] * n
            trial += [clip] * n
            category += [cat] * n
            position += list(range(n))
    order = rng.permutation(len(subject)) if shuffle_rows else np.arange(len(subject))
    cols = [np.asarray(c)[order] for c in (subject, trial, category, position)]
    n = len(order)
    target = rng.dirichlet(np.ones(4), size=len(subjects) * len(categories))
    clip_key = np.unique(cols[0] * 1000 + cols[1], return_inverse=True)[1]
    x = np.stack([np.arange(n), cols[0], cols[1]], axis=1)
    return FeatureTable(
        features={"x": torch.tensor(x, dtype=torch.float32)},
        target=torch.tensor(target[clip_key], dtype=torch.float32),
        subject=torch.tensor(cols[0]),
        trial=torch.tensor(cols[1]),
        category=torch.tensor(cols[2]),
        position=torch.tensor(cols[3]),
    )


TOY_METADATA = DatasetMetadata(
    emotion_names=("a", "b", "c", "d"),
    valence_groups=(0, 0, 1, 1),
    modality_shapes={"x": (3,)},
    physiological=("x",),
    behavioral=(),
    name="toy",
)


class ToyDataModule(FeatureDataModule):
    """A concrete datamodule over a table given in memory."""

    def __init__(self, table: FeatureTable, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = table
        self.loads = 0

    @property
    def metadata(self) -> DatasetMetadata:
        return TOY_METADATA

    def load_table(self) -> FeatureTable:
        self.loads += 1
        return self.source
