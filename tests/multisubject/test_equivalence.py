"""All subjects at once gives the per-subject results of one Lightning run per subject.

Tolerances (documented in docs/many-subjects.md): test metrics agree to 1e-6; parameters agree
to 1e-5 except for a few elements (at most 0.1 %) and on average to 1e-6. Batched and unbatched
kernels round differently (~1e-7), and Adam's step m / sqrt(v) turns the rounding noise of a
gradient that is zero in exact arithmetic (e.g. a bias that the softmax ignores) into steps of
size lr, so single elements can drift apart without changing any prediction.

Every comparison runs on the CPU and, when one is present, on a CUDA device (deterministic
algorithms on, as ``--trainer.deterministic=true`` sets them; TF32 off, PyTorch's default). On
CUDA batched (``bmm``) and single (``mm``) cuBLAS kernels round differently too; the tolerances
of ``TOLERANCES["cuda"]`` are the measured differences with a margin (docs/many-subjects.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from many_subjects_helpers import MLP, MPCL, write_config

from mpcl.cli import build_cli
from mpcl.multisubject import ManySubjectsRun
from mpcl.runner import ProtocolRun

METRICS = ["chebyshev", "clark", "canberra", "kl", "cosine", "intersection"]
#: Per device: test metrics; mean parameter difference; (element threshold, fraction above it).
TOLERANCES = {
    "cpu": {"metric": 1e-6, "param_mean": 1e-6, "element": (1e-5, 1e-3)},
    "cuda": {"metric": 1e-5, "param_mean": 1e-5, "element": (1e-4, 1e-2)},
}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


def _checkpoint(run: Path, fold: int, pattern: str) -> Path:
    found = sorted((run / f"fold-{fold:02d}-seed-3407").glob(f"**/{pattern}"))
    assert len(found) == 1, found
    return found[0]


def _compare_runs(
    tmp: Path,
    config: Path,
    protocol: str = "random-window",
    max_group: int | None = None,
    device: str = "cpu",
) -> dict:
    tolerance = TOLERANCES[device]
    one = ProtocolRun([str(config)], protocol, tmp / "one").run(log=lambda _: None)
    many = ManySubjectsRun([str(config)], protocol, tmp / "many", max_group=max_group).run(
        log=lambda _: None
    )
    key = ["method", "fold"]
    one = one.sort_values(key).reset_index(drop=True)
    many = many.sort_values(key).reset_index(drop=True)
    assert list(one["method"]) == list(many["method"])
    assert (one[METRICS] - many[METRICS]).abs().max().max() < tolerance["metric"]

    epochs = pd.read_csv(tmp / "many" / "epochs-seed-3407.csv").groupby("fold")["epoch"].max()
    report = {"best": [], "last": []}
    for fold in sorted(one["fold"].unique()):
        a = _checkpoint(tmp / "one", fold, "best-*.ckpt")
        b = _checkpoint(tmp / "many", fold, "best-*.ckpt")
        assert a.name == b.name  # the same best epoch
        last = torch.load(_checkpoint(tmp / "one", fold, "last.ckpt"), weights_only=True)
        assert last["epoch"] == epochs[fold]  # stopped early after the same epoch
        report["best"].append(int(a.stem.split("-")[1]))
        report["last"].append(int(epochs[fold]))
        sa = torch.load(a, weights_only=True)["state_dict"]
        sb = torch.load(b, weights_only=True)["state_dict"]
        assert sa.keys() == sb.keys()
        diff = torch.cat([(sa[k].float() - sb[k].float()).abs().flatten() for k in sa])
        assert diff.mean() < tolerance["param_mean"]
        element, fraction = tolerance["element"]
        assert (diff > element).float().mean() <= fraction
    return report


@pytest.mark.parametrize("device", DEVICES)
def test_mlp_with_dropout_and_early_stopping_equals_one_by_one(tmp_path, equal_dmer_dir, device):
    config = write_config(
        tmp_path / "mlp.yaml",
        equal_dmer_dir,
        MLP,
        epochs=8,
        patience=1,
        min_delta=0.006,
        device=device,
    )
    report = _compare_runs(tmp_path, config, device=device)
    assert min(report["last"]) < 7  # some subject did stop early


@pytest.mark.parametrize("device", DEVICES)
def test_ragged_subjects_and_split_groups_equal_one_by_one(tmp_path, ragged_dmer_dir, device):
    # Epochs of different lengths (short last batches get calls of their own) and groups cut
    # into calls of 2 models: every model still draws its own run's dropout masks.
    config = write_config(tmp_path / "mlp.yaml", ragged_dmer_dir, MLP, epochs=3, device=device)
    _compare_runs(tmp_path, config, protocol="clip-holdout", max_group=2, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_mpcl_with_memory_dropout_and_clipping_equals_one_by_one(tmp_path, equal_dmer_dir, device):
    # A small clipping norm: every step's gradient is rescaled, per model.
    config = write_config(
        tmp_path / "mpcl.yaml",
        equal_dmer_dir,
        MPCL,
        epochs=3,
        gradient_clip_val=0.05,
        device=device,
    )
    _compare_runs(tmp_path, config, device=device)


def test_subject_checkpoint_is_tested_by_mpcl_test(tmp_path, equal_dmer_dir):
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, MLP, epochs=2)
    ManySubjectsRun([str(config)], "random-window", tmp_path / "many", folds=[1]).run(
        log=lambda _: None
    )
    fold_dir = tmp_path / "many" / "fold-01-seed-3407"
    ckpt = next((fold_dir / "checkpoints").glob("best-*.ckpt"))
    build_cli(
        [
            "test",
            "--config",
            str(config),
            "--data.init_args.fold=1",
            f"--ckpt_path={ckpt}",
            f"--results.output_dir={tmp_path / 'retest'}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    )
    stacked = json.loads((fold_dir / "test_results.json").read_text())
    retest = json.loads((tmp_path / "retest" / "test_results.json").read_text())
    assert retest["num_samples"] == stacked["num_samples"]
    for method, values in stacked["results"].items():
        for metric, value in values.items():
            assert retest["results"][method][metric] == pytest.approx(value, abs=1e-6)
