"""The robustness protocol and the data-size curve: conditions, reuse of trained folds, tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from datamodules.data_size import DataSize, subsample_training_rows
from datamodules.metadata import DatasetMetadata
from mpcl.runner.cli import main as protocol_main
from mpcl.runner.robustness import (
    RobustnessRun,
    condition_table,
    evaluate_conditions,
    standard_conditions,
)

SMALL = DatasetMetadata(
    emotion_names=("joy", "calm", "awe", "fear", "anger"),
    valence_groups=(0, 0, 0, 1, 1),
    modality_shapes={"eeg": (4, 3), "gsr": (6,), "face": (9,)},
    physiological=("eeg", "gsr"),
    behavioral=("face",),
)


def make_table(n: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    table = {m: torch.randn(n, *s, generator=generator) for m, s in SMALL.modality_shapes.items()}
    table["target"] = torch.softmax(2 * torch.randn(n, 5, generator=generator), dim=-1)
    table["subject"] = torch.zeros(n, dtype=torch.long)
    return table


REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "synthetic"


def tiny(root: Path) -> list[str]:
    return [
        "--data.init_args.num_subjects=4",
        "--data.init_args.rows_per_clip=4",
        f"--data.init_args.root={root}",
        "--data.init_args.num_folds=2",
        "--trainer.max_epochs=1",
    ]


def test_standard_conditions_cover_every_modality_branch_rate_and_snr() -> None:
    names = [c.name for c in standard_conditions(SMALL, (0.1, 0.5), (10.0,))]
    assert names == [
        "all", "no-eeg", "no-gsr", "no-face", "physiological-only", "behavioral-only",
        "drop-10%", "drop-50%", "noise-10dB",
    ]  # fmt: skip


def test_conditions_change_what_a_model_sees_and_nothing_else() -> None:
    from mpcl.models import MLPModule

    torch.manual_seed(0)
    model = MLPModule(SMALL, hidden_dims=[8]).eval()
    test = make_table(60)
    rows = evaluate_conditions(model, test, SMALL, standard_conditions(SMALL), seed=3)
    by_name = {r["condition"]: r for r in rows}
    with torch.no_grad():
        preds = model(test)[0].double()
    kl = (test["target"].double() * (test["target"].double() / preds).log()).sum(1).mean()
    assert by_name["all"]["kl"] == pytest.approx(float(kl), rel=1e-6)
    assert by_name["no-face"]["kl"] == by_name["physiological-only"]["kl"]
    assert by_name["no-eeg"]["kl"] != by_name["all"]["kl"]
    assert by_name["noise-0dB"]["kl"] != by_name["all"]["kl"]
    again = evaluate_conditions(model, test, SMALL, standard_conditions(SMALL), seed=3)
    assert rows == again


def test_condition_table_has_mean_std_and_wilcoxon_against_the_reference() -> None:
    rows = []
    for fold in range(5):
        for model, kl in (("mpcl", 0.1 + fold / 100), ("mlp", 0.2 + fold / 100)):
            metrics = {m: kl for m in ("chebyshev", "clark", "canberra", "kl", "cosine")}
            rows.append({"model": model, "fold": fold, "seed": 1, "condition": "all",
                         **metrics, "intersection": 0.5})  # fmt: skip
    text, long_form = condition_table(pd.DataFrame(rows), "mpcl")
    assert "| all | mlp | 0.2200 ± 0.0158 (p=0.062)" in text
    kl = long_form[(long_form.model == "mlp") & (long_form.metric == "kl")].iloc[0]
    assert kl["p_vs_reference"] == pytest.approx(0.0625)
    assert kl["folds"] == 5


def test_subsampling_keeps_whole_subjects_or_a_share_of_every_clip() -> None:
    subject = torch.arange(8).repeat_interleave(20)
    trial = torch.arange(4).repeat_interleave(5).repeat(8)
    rows = torch.arange(160)
    kept = subsample_training_rows(rows, subject, trial, DataSize(train_subjects=3, seed=1))
    assert len(torch.unique(subject[kept])) == 3 and len(kept) == 60
    kept = subsample_training_rows(rows, subject, trial, DataSize(window_fraction=0.5))
    counts = torch.unique(subject[kept] * 10 + trial[kept], return_counts=True)[1]
    assert counts.tolist() == [3] * 32  # ceil(5 * 0.5)
    assert torch.equal(kept, torch.sort(kept).values)
    with pytest.raises(ValueError, match="exceeds the 8 training subjects"):
        subsample_training_rows(rows, subject, trial, DataSize(train_subjects=9))


@pytest.mark.slow
def test_robustness_run_trains_once_and_reuses_the_folds(in_tmp_cwd) -> None:
    models = {
        "mpcl": [str(CONFIGS / "mlp.yaml")],
        "mean": [str(CONFIGS / "trivial_train_mean.yaml")],
    }
    run = RobustnessRun(models, "kfold", in_tmp_cwd / "rob", overrides=tiny(in_tmp_cwd / "d"))
    text = run.run()
    frame = pd.read_csv(in_tmp_cwd / "rob" / "conditions.csv")
    assert len(frame) == 2 * 2 * len(standard_conditions(run_metadata()))
    assert (in_tmp_cwd / "rob" / "degradation.png").stat().st_size > 0
    assert "| drop-30% | mean |" in text
    # A constant predictor is unaffected by any condition.
    mean = frame[frame.model == "mean"].groupby("fold")["kl"].nunique()
    assert (mean == 1).all()
    # The trained folds are reused: a rerun trains and evaluates nothing new.
    stamp = (in_tmp_cwd / "rob" / "conditions.csv").stat().st_mtime_ns
    run.run()
    assert (in_tmp_cwd / "rob" / "conditions.csv").stat().st_mtime_ns == stamp


def run_metadata():
    from datamodules.dmer import dmer_metadata

    return dmer_metadata()


@pytest.mark.slow
def test_datasize_cli_writes_a_table_per_size(in_tmp_cwd) -> None:
    args = ["datasize", "--models", f"mpcl={CONFIGS / 'mlp.yaml'}", "--sizes", "1", "0"]
    assert protocol_main([*args, "--output", "ds", "--", *tiny(in_tmp_cwd / "d")]) == 0
    text = (in_tmp_cwd / "ds" / "datasize.md").read_text()
    assert "| 1 subjects | mpcl |" in text and "| all | mpcl |" in text
    frame = pd.read_csv(in_tmp_cwd / "ds" / "datasize-folds.csv")
    assert set(frame["size"]) == {"1 subjects", "all"}
