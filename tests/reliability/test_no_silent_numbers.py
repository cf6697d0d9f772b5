"""No silent wrong numbers: mismatched or damaged checkpoints, NaN losses, NaN outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from reliability_helpers import train_tiny_mlp

from datamodules import DataFormatError
from datamodules.dmer import load_dmer_file
from datamodules.synthetic import generate_synthetic_dmer
from mpcl.callbacks.predictions import PredictionWriter
from mpcl.cli import build_cli
from mpcl.cli import main as mpcl_main
from mpcl.models import MLPModule


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"{path}: bare {token} token (invalid JSON)")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[str], Path]:
    """(1-epoch tiny MLP checkpoint, config arguments, folder of two files to predict)."""
    tmp = tmp_path_factory.mktemp("trained")
    ckpt, args = train_tiny_mlp(tmp)
    source = tmp / "source"
    generate_synthetic_dmer(source, num_subjects=1, rows_per_clip=2, seed=5)
    return ckpt, args, source


def _predict(trained, tmp_path, ckpt, *extra):
    _, args, source = trained
    return mpcl_main(
        [
            "predict",
            *args,
            *extra,
            f"--data.init_args.predict_root={source}",
            f"--ckpt_path={ckpt}",
            f"--predictions.output_path={tmp_path / 'preds.csv'}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    )


def _datamodule_state(checkpoint: dict) -> dict:
    return next(v for v in checkpoint.values() if isinstance(v, dict) and "feature_std" in v)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--data.init_args.standardize=false"], "standardize=True"),
        (["--data.init_args.modalities=[eeg, gsr, ppg]"], "MLPModule"),  # the model's load
    ],
)
def test_predict_refuses_a_preprocessing_mismatch(trained, tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit):
        _predict(trained, tmp_path, trained[0], *extra)
    assert words in capsys.readouterr().err
    assert not (tmp_path / "preds.csv").exists()


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf")])
def test_predict_refuses_damaged_statistics(trained, tmp_path, capsys, bad):
    checkpoint = torch.load(trained[0], weights_only=True)
    _datamodule_state(checkpoint)["feature_std"]["gsr"][3] = bad
    damaged = tmp_path / "damaged.ckpt"
    torch.save(checkpoint, damaged)
    with pytest.raises(SystemExit):
        _predict(trained, tmp_path, damaged)
    err = capsys.readouterr().err
    assert "standardisation std of modality 'gsr'" in err and "feature 3" in err
    assert not (tmp_path / "preds.csv").exists()


def test_a_modality_layout_mismatch_is_refused():
    from datamodules.checkpoint_state import check_checkpoint_state, layout_of

    state = {"standardize": True, "modalities": layout_of({"gsr": (28,), "ppg": (27,)})}
    check_checkpoint_state("DM", state, True, False, {"gsr": (28,), "ppg": (27,)})
    with pytest.raises(ValueError, match="trained on modalities"):
        check_checkpoint_state("DM", state, True, False, {"ppg": (27,), "gsr": (28,)})


def test_non_finite_predictions_are_never_written(tmp_path):
    writer = PredictionWriter(str(tmp_path / "p.csv"))
    writer._parts = [
        {"preds": torch.tensor([[0.5, 0.5], [math.nan, 0.5]]), "index": torch.tensor([0, 1])}
    ]

    class _Trainer:
        world_size, is_global_zero, log_dir, default_root_dir = 1, True, None, str(tmp_path)

        class strategy:
            @staticmethod
            def barrier(name):
                pass

    class _Module:
        class metadata:
            emotion_names = ("a", "b")

    with pytest.raises(RuntimeError, match="1 of 2 predicted rows are not finite"):
        writer.on_predict_epoch_end(_Trainer(), _Module())
    assert not (tmp_path / "p.csv").exists()


def test_feature_outside_float32_is_refused_with_row_and_column(tmp_path):
    generate_synthetic_dmer(tmp_path, num_subjects=1, rows_per_clip=2, seed=1)
    path = next(tmp_path.glob("*.mat"))
    data = scipy.io.loadmat(path)
    feas = data["feas"].astype(np.float64)
    feas[7, 100] = 1e39  # finite in float64, inf in float32
    scipy.io.savemat(
        path, {**{k: v for k, v in data.items() if not k.startswith("__")}, "feas": feas}
    )
    with pytest.raises(DataFormatError, match=r"row 7, column 100"):
        load_dmer_file(path, 1)


@pytest.mark.parametrize("where", ["train", "val"])
def test_non_finite_loss_stops_every_config(trained, tmp_path, monkeypatch, capsys, where):
    # No EarlyStopping (as in the DMER and WESAD configs): the model itself must stop.
    original = MLPModule.forward

    def forward(self, batch):
        preds, aux = original(self, batch)
        if (self.training and where == "train") or (not self.training and where == "val"):
            preds = preds * math.nan
            aux = {}
        return preds, aux

    monkeypatch.setattr(MLPModule, "forward", forward)
    with pytest.raises(SystemExit) as exit_info:
        mpcl_main(
            [
                "fit",
                *trained[1],
                "--trainer.callbacks=[]",
                "--trainer.max_epochs=3",
                "--trainer.num_sanity_val_steps=0",
                "--trainer.enable_progress_bar=false",
                "--test_after_fit=true",
                f"--trainer.default_root_dir={tmp_path}",
                f"--trainer.logger.init_args.save_dir={tmp_path}",
                f"--results.output_dir={tmp_path}",
            ]
        )
    assert exit_info.value.code == 1
    assert "loss is not finite" in capsys.readouterr().err
    assert not list(tmp_path.glob("**/best-*.ckpt"))
    assert not (tmp_path / "test_results.json").exists()


def test_best_checkpoint_never_has_a_non_finite_score(monkeypatch):
    from mpcl.callbacks.checkpoint import EpochCheckpoint

    saved = []
    callback = EpochCheckpoint(monitor="val/kl", mode="min", save_top_k=1)
    monkeypatch.setattr(
        EpochCheckpoint, "_update_best_and_save", lambda self, cur, tr, mc: saved.append(cur)
    )
    for score in (math.nan, math.inf):
        callback._save_monitor_checkpoint(None, {"val/kl": torch.tensor(score)})
    assert saved == []
    callback._save_monitor_checkpoint(None, {"val/kl": torch.tensor(0.5)})
    assert len(saved) == 1


def test_results_json_is_valid_json_with_non_finite_metrics(trained, tmp_path, monkeypatch):
    original = MLPModule.forward

    def forward(self, batch):
        preds, _ = original(self, batch)
        return preds * math.nan, {}

    monkeypatch.setattr(MLPModule, "forward", forward)
    build_cli(
        [
            "test",
            *trained[1],
            f"--ckpt_path={trained[0]}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--results.output_dir={tmp_path}",
        ]
    )
    payload = _strict_json(tmp_path / "test_results.json")
    assert payload["results"]["MLPModule"]["kl"] is None


def test_results_frame_helper_keeps_finite_values():
    from mpcl.guards import finite_or_none

    assert finite_or_none({"a": [1.0, math.nan], "b": math.inf, "c": "x"}) == {
        "a": [1.0, None],
        "b": None,
        "c": "x",
    }
    assert pd.isna(np.nan)
