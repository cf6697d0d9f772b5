"""The shipped speed benchmark runs end to end on a tiny recording."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.mark.slow  # generates and extracts a recording: ~30 s
def test_speed_script_writes_its_table(tmp_path, monkeypatch):
    from benchmarks import dmer_raw_speed

    argv = ["dmer_raw_speed", "--clip-seconds", "5", "--width", "32", "--height", "24"]
    argv += ["--variants", "no ICA", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    dmer_raw_speed.main()
    rows = json.loads((tmp_path / "speed.json").read_text())
    assert set(rows) == {"no ICA"}
    assert rows["no ICA"]["per_hour_s"]["face"] > 0
    assert "| no ICA |" in (tmp_path / "speed.md").read_text()
