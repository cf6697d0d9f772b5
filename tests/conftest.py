"""Shared test set-up: no W&B traffic, no stray runs in the working tree."""

from __future__ import annotations

import os

import pytest

os.environ["WANDB_MODE"] = "disabled"


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run a test from an empty temporary directory (runs/ and data/ land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    """Hide pytest's own arguments from LightningCLI, which tests drive through ``args``."""
    monkeypatch.setattr("sys.argv", ["mpcl"])
