"""Shared fixture of the datamodule tests: a tiny synthetic DMER folder."""

from __future__ import annotations

import pytest

from datamodules.synthetic import generate_synthetic_dmer

TINY = {"num_subjects": 5, "rows_per_clip": 6, "seed": 1}


@pytest.fixture(scope="session")
def tiny_dmer_dir(tmp_path_factory):
    """Five synthetic subjects x 32 clips x 6 rows in the DMER feature format."""
    root = tmp_path_factory.mktemp("dmer")
    generate_synthetic_dmer(root, **TINY)
    return root
