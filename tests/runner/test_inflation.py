"""The protocol-inflation table: which runs it plans, and how it tabulates finished ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mpcl.metrics import LDL_METRICS
from mpcl.runner import inflation
from mpcl.runner.inflation import collect, inflation_table, model_configs, planned_runs

ROOT = Path(__file__).resolve().parents[2]
METRICS = [m.name for m in LDL_METRICS]


def test_planned_runs_stack_the_published_overlay_on_random_window():
    runs = planned_runs(
        "synthetic", ["mlp", "helo_reference"], ["clip-holdout", "loso"], Path("o"), ROOT
    )
    assert [(r.model, r.setting, r.protocol) for r in runs] == [
        ("mlp", "published", "random-window"),
        ("mlp", "clip-holdout", "clip-holdout"),
        ("mlp", "loso", "loso"),
        ("helo_reference", "published", "random-window"),
        ("helo_reference", "clip-holdout", "clip-holdout"),
        ("helo_reference", "loso", "loso"),
    ]
    published = runs[3].configs
    assert published[0].endswith("experiments/synthetic/helo.yaml")
    assert published[1].endswith("experiments/presets/helo_reference.yaml")
    assert published[2].endswith(inflation.PUBLISHED_OVERLAY)
    assert all(inflation.PUBLISHED_OVERLAY not in c for c in runs[4].configs)
    assert runs[0].folder == Path("o/published/mlp") and runs[0].overrides == ()


def test_decompose_undoes_one_published_factor_per_run():
    every = list(inflation.PUBLISHED_VARIANTS)
    runs = planned_runs("synthetic", ["mlp"], ["loso"], Path("o"), ROOT, variants=every)
    variants = [r for r in runs if r.setting in inflation.PUBLISHED_VARIANTS]
    assert len(variants) == 4
    for run in variants:
        assert run.protocol == "random-window" and run.configs == runs[0].configs
        assert run.overrides == inflation.PUBLISHED_VARIANTS[run.setting]
        assert run.folder == Path("o") / run.setting / "mlp"
    with pytest.raises(ValueError, match="unknown variants"):
        planned_runs("synthetic", ["mlp"], [], Path("o"), ROOT, variants=["published-faster"])


def test_unknown_model_names_the_missing_config():
    with pytest.raises(FileNotFoundError, match="nonesuch"):
        model_configs("synthetic", "nonesuch", ROOT)


def _write_run(folder: Path, model: str, kl: list[float], control_kl: list[float]) -> None:
    folder.mkdir(parents=True)
    rows = []
    for method, values in ((model, kl), ("train-mean", control_kl), ("uniform", control_kl)):
        for fold, value in enumerate(values):
            row = {m: 0.5 for m in METRICS}
            row.update(method=method, fold=fold, seed=3407, kl=value, cosine=1 - value)
            rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "folds.csv", index=False)


def test_table_puts_published_beside_honest_with_the_difference(tmp_path):
    runs = planned_runs("synthetic", ["mlp", "helo"], ["clip-holdout"], tmp_path, ROOT)
    _write_run(tmp_path / "published" / "mlp", "mlp", [0.02, 0.04], [0.05, 0.05])
    _write_run(tmp_path / "clip-holdout" / "mlp", "mlp", [0.05, 0.07], [0.06, 0.06])
    _write_run(tmp_path / "published" / "helo", "helo", [0.10, 0.10], [0.5, 0.5])  # no honest run
    long_form = collect(runs)
    # the control once per setting, from the first model's runs; no uniform row
    assert sorted(set(long_form["method"])) == ["helo", "mlp", "train-mean"]
    control = long_form[(long_form["method"] == "train-mean") & (long_form["metric"] == "kl")]
    assert control.set_index("setting")["mean"].to_dict() == {
        "published": 0.05,
        "clip-holdout": 0.06,
    }
    text = inflation_table(long_form, ["clip-holdout"])
    lines = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in text.splitlines()}
    mlp_kl = lines[("mlp", "KL ↓")]
    assert "0.0300 ± 0.0141" in mlp_kl and "0.0600 ± 0.0141" in mlp_kl
    assert "-0.0300 (-50 %) *" in mlp_kl  # lower KL under the published protocol flatters it
    assert "+0.0300 (+3 %) *" in lines[("mlp", "Cosine ↑")]
    assert lines[("mlp", "Clark ↓")].rstrip(" |").endswith("+0.0000 (+0 %) | 2/2")
    assert lines[("helo", "KL ↓")].rstrip(" |").endswith("| - | - | 2/0")
    assert mlp_kl.rstrip(" |").endswith("| 2/2")
