"""Tiny trained runs shared by the report tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import MLP, MPCL, fit, tiny

from mpcl.runner import ProtocolRun


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="session")
def mpcl_run(runs_root) -> Path:
    """A tiny MPCL run, trained and tested (its log folder)."""
    return fit(MPCL, runs_root, "mpcl")


@pytest.fixture(scope="session")
def mlp_run(runs_root) -> Path:
    """A tiny MLP run, trained and tested."""
    return fit(MLP, runs_root, "mlp")


@pytest.fixture(scope="session")
def protocol_runs(runs_root) -> tuple[Path, Path]:
    """Two tiny protocol runs (MLP and MPCL, kfold, 2 of 3 folds), for protocol and comparison."""
    overrides = [*tiny(runs_root / "data"), "--data.init_args.num_folds=3"]
    out = []
    for name, config in (("mpcl", MPCL), ("mlp", MLP)):
        folder = runs_root / "protocol" / name
        ProtocolRun([config], "kfold", folder, overrides=overrides, folds=[0, 1], name=name).run(
            log=lambda _: None
        )
        out.append(folder)
    return out[0], out[1]
