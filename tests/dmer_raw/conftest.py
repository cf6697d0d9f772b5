"""Shared fixtures of the raw DMER extraction tests: small generated recordings.

The extraction needs the ``raw`` extra (MNE, edfio, PyAV); ``make install`` installs it. When it
is missing (a plain ``pip install .``) these tests are skipped with that reason.
"""

from __future__ import annotations

import importlib.util

import pytest

MISSING = [m for m in ("mne", "edfio", "av") if importlib.util.find_spec(m) is None]
if MISSING:
    pytest.skip(
        f"the raw extra is not installed (missing {MISSING}): pip install -e '.[raw]'",
        allow_module_level=True,
    )

from dmer_raw_constants import CLIP_SECONDS, FAST, SUBJECTS  # noqa: E402

from datamodules.dmer_raw.pipeline import run_extraction  # noqa: E402
from datamodules.dmer_raw.synthetic_raw import RawSession, write_raw_participant  # noqa: E402


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory):
    """RAW_DIR with participants 1 and 2 (O1 carries 9-13 Hz noise of variance 25 uV^2)."""
    root = tmp_path_factory.mktemp("raw")
    for subject in SUBJECTS:
        session = RawSession(
            clip_seconds=CLIP_SECONDS, band_noise={"O1": (9.0, 13.0, 25.0)}, seed=subject
        )
        write_raw_participant(root / str(subject), session)
    return root


@pytest.fixture(scope="session")
def extracted(raw_dir, tmp_path_factory):
    """OUT_DIR of one extraction of ``raw_dir`` with the fast settings."""
    out = tmp_path_factory.mktemp("features")
    run_extraction(raw_dir, out, FAST, progress=False, log=lambda message: None)
    return out
