"""`mpcl predict` writes every window's distribution of a folder of feature files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from inference_helpers import expected_predictions, predict, raw_rows

from datamodules import DataFormatError, DMERDataModule
from datamodules.dmer import DMER_EMOTIONS
from mpcl.callbacks.predictions import PredictionWriter, parquet_engine, predictions_frame
from mpcl.cli import build_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["mlp", "mpcl"])
def test_predict_writes_every_row_of_the_files(tmp_path, trained, predict_dir, model):
    ckpt, args = trained[model]
    output = tmp_path / "out" / "predictions.csv"
    # The training files are not needed: the standardisation comes from the checkpoint.
    predict(ckpt, args, predict_dir, output, root=tmp_path / "no-training-data")
    frame = pd.read_csv(output)
    raw, subjects, trials = raw_rows(predict_dir)
    assert list(frame.columns) == ["subject", "trial", "index", *DMER_EMOTIONS]
    assert len(frame) == len(subjects) == 32 * 3 + 35
    assert frame["index"].tolist() == list(range(len(frame)))
    assert (frame["subject"].to_numpy() == subjects).all()
    assert (frame["trial"].to_numpy() == trials).all()
    values = frame[list(DMER_EMOTIONS)].to_numpy()
    assert np.allclose(values.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(values, expected_predictions(ckpt, raw), atol=1e-6)
    assert not np.allclose(values[0], values[1])  # not a constant answer


def test_without_a_source_the_test_rows_are_predicted(tmp_path, trained):
    ckpt, args = trained["mlp"]
    output = tmp_path / "test-rows.csv"
    build_cli(
        [
            "predict",
            *args,
            f"--ckpt_path={ckpt}",
            f"--predictions.output_path={output}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    )
    cli = build_cli([*args], run=False)
    cli.datamodule.setup()
    expected = cli.datamodule.split_rows("test")["index"].numpy()
    assert pd.read_csv(output)["index"].tolist() == expected.tolist()


def test_frame_is_sorted_by_index_and_checks_columns():
    def part(preds, index, subject, trial):
        tensors = (preds, index, subject, trial)
        return dict(
            zip(("preds", "index", "subject", "trial"), map(torch.tensor, tensors), strict=True)
        )

    parts = [
        part([[0.2, 0.8]], [5], [1], [0]),
        part([[0.6, 0.4], [0.5, 0.5]], [9, 1], [1, 2], [3, 4]),
    ]
    frame = predictions_frame(parts, ["joy", "fear"])
    assert frame["index"].tolist() == [1, 5, 9]
    assert frame["joy"].tolist() == pytest.approx([0.5, 0.2, 0.6])
    with pytest.raises(ValueError, match="collide"):
        predictions_frame(parts, ["index", "fear"])
    with pytest.raises(ValueError, match="3 emotions"):
        predictions_frame(parts, ["a", "b", "c"])


def test_output_formats(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv, \.parquet or \.pq"):
        PredictionWriter(output_path=str(tmp_path / "x.txt"))
    if parquet_engine() is None:
        with pytest.raises(ImportError, match="pyarrow"):
            PredictionWriter(output_path=str(tmp_path / "x.parquet"))
    else:
        PredictionWriter(output_path=str(tmp_path / "x.parquet"))


def test_predict_files_must_be_named_by_subject_id(tmp_path, predict_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "subject-7.mat").write_bytes((predict_dir / "7.mat").read_bytes())
    datamodule = DMERDataModule(root=str(tmp_path), predict_root=str(bad))
    with pytest.raises(DataFormatError, match=r"subject-7\.mat.*<subject_id>\.mat"):
        datamodule.load_predict_table()
    empty = DMERDataModule(root=str(tmp_path), predict_root=str(tmp_path / "missing"))
    with pytest.raises(DataFormatError, match="predict_root folder not found"):
        empty.load_predict_table()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_predict_writes_the_single_process_file(tmp_path, trained, predict_dir):
    ckpt, args = trained["mlp"]
    single = tmp_path / "single.csv"
    predict(ckpt, args, predict_dir, single, root=tmp_path / "none")
    double = tmp_path / "ddp" / "double.csv"
    command = [
        sys.executable, "-m", "mpcl", "predict", *args,
        f"--data.init_args.root={tmp_path / 'none'}",
        f"--data.init_args.predict_root={predict_dir}",
        f"--ckpt_path={ckpt}",
        f"--predictions.output_path={double}",
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'ddp'}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'ddp'}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "MASTER_PORT": str(_free_port())}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in done.stdout + done.stderr  # two processes shared the rows
    a, b = pd.read_csv(single), pd.read_csv(double)
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6, rtol=0)
    assert not list((tmp_path / "ddp").glob(".double.csv.*"))  # no temporary left behind
