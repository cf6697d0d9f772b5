"""Fixtures of the many-subjects tests: tiny DMER folders and run configs written per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from many_subjects_helpers import SUBJECTS

from datamodules.synthetic import generate_synthetic_dmer


@pytest.fixture(scope="session")
def equal_dmer_dir(tmp_path_factory) -> Path:
    """Three synthetic subjects, 32 clips x 6 rows each (equal row counts)."""
    root = tmp_path_factory.mktemp("dmer-equal")
    generate_synthetic_dmer(root, num_subjects=3, rows_per_clip=6, seed=2)
    return root


@pytest.fixture(scope="session")
def ragged_dmer_dir(tmp_path_factory, equal_dmer_dir) -> Path:
    """The same subjects cut to 6, 4 and 5 rows per clip: epochs of different lengths."""
    root = tmp_path_factory.mktemp("dmer-ragged")
    for subject, keep in zip(SUBJECTS, (6, 4, 5), strict=True):
        data = scipy.io.loadmat(equal_dmer_dir / f"{subject}.mat")
        vids = data["vids"].reshape(-1)
        position = np.zeros(len(vids), dtype=int)
        for clip in np.unique(vids):
            rows = np.flatnonzero(vids == clip)
            position[rows] = np.arange(len(rows))
        rows = position < keep
        scipy.io.savemat(
            root / f"{subject}.mat",
            {
                "feas": data["feas"][rows],
                "vids": data["vids"][rows],
                "dis_label": data["dis_label"],
            },
        )
    return root
