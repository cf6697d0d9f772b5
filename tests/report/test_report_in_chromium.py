"""report.html opened in headless Chromium: renders, no console errors, a non-blank screenshot.

Slow, and skipped where Chromium is not installed (``apt-get install chromium`` on Debian).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from mpcl.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Console messages of the page are written to stderr as "...:CONSOLE:..." lines.
    "--enable-logging=stderr",
    "--v=0",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
    ),
]


def screenshot(page: Path, out: Path, profile: Path) -> tuple[list[str], np.ndarray]:
    """Console lines of the page and its screenshot (RGB in [0, 1])."""
    done = subprocess.run(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            "--window-size=1100,3000",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return console, imread(out)[..., :3]


def test_the_console_check_catches_a_page_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('broken'); nope();</script></body></html>")
    console, _ = screenshot(page, tmp_path / "bad.png", tmp_path / "profile")
    assert any("broken" in line for line in console)
    assert any("nope is not defined" in line for line in console)


def test_report_renders_without_console_errors(mpcl_run, tmp_path):
    report = build_report([mpcl_run], tmp_path / "report", formats=("png",))
    console, image = screenshot(report, tmp_path / "shot.png", tmp_path / "profile")
    assert console == []
    assert image.shape[:2] == (3000, 1100)
    not_white = (image < 0.95).any(axis=-1).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the screenshot is not white"
    assert image.std() > 0.05
