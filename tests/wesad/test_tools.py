"""The command-line tools: the fake-data generator and the extraction benchmark."""

import pytest

from datamodules.wesad import bench, fixtures
from datamodules.wesad.features import FEATURE_NAMES
from datamodules.wesad.layout import SUBJECTS
from datamodules.wesad.quest import parse_quest


def test_generator_writes_the_release_layout(tmp_path):
    fixtures.main([str(tmp_path), "--subjects", "S4", "S16", "--seconds", "10"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S16", "S4"]
    for subject in ("S4", "S16"):
        assert (tmp_path / subject / f"{subject}.pkl").stat().st_size > 0
        assert parse_quest(tmp_path / subject / f"{subject}_quest.csv").subject == subject


def test_generator_refuses_bad_names_and_knows_all(tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        fixtures.main([str(tmp_path), "--subjects", "X1"])
    written = []
    monkeypatch.setattr(fixtures, "generate_fake_wesad", lambda root, s, *a: written.extend(s))
    fixtures.main([str(tmp_path), "--subjects", "all"])
    assert tuple(written) == SUBJECTS


def test_benchmark_prints_a_markdown_table(capsys):
    bench.main(["--hours", "0.02", "--repeats", "1"])
    out = capsys.readouterr().out
    assert out.startswith("`python -m datamodules.wesad.bench --hours 0.02")
    stages = [line for line in out.splitlines() if line.startswith("| ") and "|---" not in line]
    # header rows of the two tables, three stages, every modality
    assert len(stages) == 2 + 3 + len(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        (row,) = [line for line in stages if line.startswith(f"| `{name}` |")]
        assert float(row.split("|")[2]) > 0
    extract = [line for line in stages if line.startswith("| extract all features")]
    seconds, per_hour = (float(v) for v in extract[0].split("|")[2:4])
    assert per_hour > seconds > 0  # a 0.02-h recording: per-hour time is larger
