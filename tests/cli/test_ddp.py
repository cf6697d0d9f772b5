"""Two-process CPU DDP: the test metrics equal a one-process evaluation of the same checkpoint.

The split has an odd number of test (and validation) rows and the evaluation batch size does not
divide the shards, so the two ranks hold different numbers of rows and batches. A sampler that
pads (repeating a row) or drops the remainder would change the metrics or the sample count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mpcl.run_folder import read_test_outputs

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "experiments" / "synthetic" / "mpcl.yaml"
DDP = REPO / "experiments" / "trainer" / "ddp.yaml"


def _data_args(root: Path, split_file: Path) -> list[str]:
    # clip-holdout, 7 rows per clip: 49 test rows and 21 validation rows (odd), rank shares
    # 25 / 24 rows, in 7 / 6 batches of 4.
    return [
        "--data.init_args.num_subjects=3",
        "--data.init_args.rows_per_clip=7",
        "--data.init_args.protocol=clip-holdout",
        "--data.init_args.fold=1",
        "--data.init_args.eval_batch_size=4",
        f"--data.init_args.root={root}",
        f"--data.init_args.split_file={split_file}",
    ]


def _mpcl(args: list[str], cwd: Path) -> None:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "mpcl", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


#: CPU (gloo) everywhere; CUDA (one GPU per process) where two GPUs are present.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_ddp_fit_test_equals_single_process_test_of_its_checkpoint(tmp_path, device):
    data = tmp_path / "data"
    common = [
        "--config", str(CONFIG),
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
    ]  # fmt: skip
    _mpcl(
        [
            "fit",
            *common,
            "--config", str(DDP),
            "--trainer.devices=2",
            "--trainer.max_epochs=2",
            "--test_after_fit=true",
            *_data_args(data, tmp_path / "split-ddp.json"),
        ],
        cwd=tmp_path,
    )  # fmt: skip
    # Default place, the log folder: finding it is a collective that every rank must join.
    written = sorted((tmp_path / "runs").glob("**/test_results.json"))
    assert len(written) == 1, written
    ddp = json.loads(written[0].read_text())
    split = json.loads((tmp_path / "split-ddp.json").read_text())
    test_rows = split["splits"]["test"]["num_rows"]
    assert test_rows == len(split["splits"]["test"]["rows"]) and test_rows % 2 == 1
    assert ddp["world_size"] == 2
    assert ddp["num_samples"] == test_rows  # no row counted twice, none dropped
    best = Path(ddp["ckpt_path"])
    assert best.name.startswith("best-") and best.exists()

    _mpcl(
        [
            "test",
            *common,
            "--trainer.devices=1",
            f"--ckpt_path={best}",
            *_data_args(data, tmp_path / "split-single.json"),
            f"--results.output_dir={tmp_path / 'single'}",
            f"--test_outputs.output_dir={tmp_path / 'single'}",
        ],
        cwd=tmp_path,
    )
    single = json.loads((tmp_path / "single" / "test_results.json").read_text())
    # The saved test pass (for reports): rank 0 gathered every rank's rows, each row once.
    ddp_pass = read_test_outputs(written[0].with_name("test_outputs.npz"))
    single_pass = read_test_outputs(tmp_path / "single" / "test_outputs.npz")
    np.testing.assert_array_equal(ddp_pass["index"], sorted(split["splits"]["test"]["rows"]))
    np.testing.assert_array_equal(ddp_pass["index"], single_pass["index"])
    np.testing.assert_allclose(ddp_pass["preds"], single_pass["preds"], atol=1e-6)
    np.testing.assert_allclose(ddp_pass["cooccurrence"], single_pass["cooccurrence"], atol=1e-6)
    assert json.loads((tmp_path / "split-single.json").read_text()) == split  # same rows
    assert single["world_size"] == 1
    assert single["num_samples"] == test_rows
    assert set(single["results"]) == set(ddp["results"]) == {"MPCLModule", "train-mean", "uniform"}
    for method, metrics in single["results"].items():
        assert set(metrics) == set(ddp["results"][method])
        for name, value in metrics.items():
            assert ddp["results"][method][name] == pytest.approx(value, abs=1e-6), (method, name)


@pytest.mark.slow
def test_protocol_runner_runs_ddp_folds_as_their_own_commands(tmp_path, monkeypatch):
    """In-process folds would make Lightning re-run the runner itself on rank 1."""
    from mpcl.runner import ProtocolRun

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    messages: list[str] = []
    run = ProtocolRun(
        [str(REPO / "experiments" / "synthetic" / "mlp.yaml"), str(DDP)],
        "kfold",
        tmp_path / "out",
        folds=[0],
        overrides=[
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.max_epochs=1",
            "--data.init_args.num_subjects=4",
            "--data.init_args.rows_per_clip=5",
            "--data.init_args.num_folds=2",
            f"--data.init_args.root={tmp_path / 'data'}",
        ],
    )
    frame = run.run(log=messages.append)
    assert sum("training" in m for m in messages) == 1
    results = json.loads((tmp_path / "out" / "fold-00-seed-3407" / "test_results.json").read_text())
    assert results["world_size"] == 2
    # 2 of 4 subjects x 32 clips x 5 rows are the test fold
    assert results["num_samples"] == 320
    assert frame["num_samples"].tolist() == [320, 320, 320]
