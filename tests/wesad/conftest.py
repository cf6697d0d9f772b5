"""Fake WESAD data shared by the WESAD tests (written once per session: about a second)."""

from __future__ import annotations

import pytest

from datamodules.wesad.fixtures import generate_fake_wesad

SUBJECTS = ("S2", "S3", "S5")


@pytest.fixture(scope="session")
def fake_wesad(tmp_path_factory):
    """(root, ground truth per subject) of three fake subjects with ~1 min per condition."""
    root = tmp_path_factory.mktemp("wesad")
    truth = generate_fake_wesad(root, SUBJECTS, seconds_per_condition=50.0, seed=11)
    return root, truth
