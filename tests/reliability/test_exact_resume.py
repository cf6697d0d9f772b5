"""Exact resume: a killed ``mpcl fit`` or protocol run, rerun, gives bit-identical numbers."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from reliability_helpers import CONFIGS, fit_args, fold_table, results, run_worker, tiny_data


def load_checkpoint(path):
    """The project's safe loader (imported late: the module is new, the tests also run on old
    code to show that they fail there)."""
    from mpcl.checkpoints import load_checkpoint as load

    return load(path)


# Each case: the process kills itself with SIGKILL at this point of a 4-epoch fit (2 batches
# per epoch), then `mpcl fit ... --ckpt_path last` finishes the run.
KILL_POINTS = {
    "mid-epoch": "batch:6",  # in epoch 2, after 1 batch
    "between-epochs": "epoch:3",  # epoch 2 about to start, epochs 0-1 checkpointed
    "torn-checkpoint-write": "write:3",  # half of the 3rd checkpoint file written
    "disk-full": "enospc:3",  # epoch 1's best checkpoint: OSError(ENOSPC) half-way
    "before-rename": "rename:4",  # epoch 1's last.ckpt complete as a temporary file, not renamed
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Test results of an uninterrupted 4-epoch fit of a model (run once per model, on demand)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    cache: dict[str, dict] = {}

    def get(model: str) -> dict:
        if model not in cache:
            done = run_worker("none", "mpcl", fit_args(model, tmp / model, tmp / "data"), tmp)
            assert done.returncode == 0, done.stderr[-3000:]
            cache[model] = results(tmp / model)
        return cache[model]

    return get


# The default suite runs two points of MPCL (dropout and memory updates); the rest are slow.
CASES = [
    ("mpcl", "between-epochs"),
    ("mpcl", "disk-full"),
    pytest.param("mpcl", "torn-checkpoint-write", marks=pytest.mark.slow),
    pytest.param("mpcl", "mid-epoch", marks=pytest.mark.slow),
    pytest.param("mpcl", "before-rename", marks=pytest.mark.slow),
    pytest.param("mlp", "mid-epoch", marks=pytest.mark.slow),
    pytest.param("mlp", "between-epochs", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("model", "point"), CASES)
def test_killed_fit_resumed_with_last_is_bit_identical(model, point, uninterrupted, tmp_path):
    args = fit_args(model, tmp_path / "run", tmp_path / "data")
    killed = run_worker(KILL_POINTS[point], "mpcl", args, tmp_path)
    if point == "disk-full":
        # The run fails in one line; the previous checkpoints stay intact, no temporary file.
        assert killed.returncode == 1, killed.stderr[-3000:]
        assert "No space left on device" in killed.stderr and "Traceback" not in killed.stderr
        assert not list((tmp_path / "run").glob("**/*.tmp"))
        assert load_checkpoint(next((tmp_path / "run").glob("**/last.ckpt")))["epoch"] == 0
    else:
        assert killed.returncode == -9, killed.stderr[-3000:]
    # `last` for most; the README's explicit path for one (what the runner passes, too).
    if point == "between-epochs":
        where = str(next((tmp_path / "run").glob("**/checkpoints/last.ckpt")))
    else:
        where = "last"
    resumed = run_worker("none", "mpcl", [*args, "--ckpt_path", where], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Same metrics to the last bit, same selected checkpoint, in the same run folder.
    assert results(tmp_path / "run") == uninterrupted(model)
    versions = sorted(p.name for p in (tmp_path / "run" / "mpcl").iterdir())
    assert versions == ["version_0"]
    assert not list((tmp_path / "run").glob("**/*.tmp"))


def test_last_checkpoint_is_the_last_epoch_whatever_the_monitor(tmp_path):
    # A learning rate of 0 never improves val/kl after epoch 0: Lightning 2.6 kept last.ckpt
    # at epoch 0; it must follow every epoch.
    args = fit_args("mlp", tmp_path / "run", tmp_path / "data", epochs=3)
    args += ["--model.init_args.optimizer.init_args.lr=0.0", "--test_after_fit=false"]
    done = run_worker("none", "mpcl", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    last = next((tmp_path / "run").glob("**/checkpoints/last.ckpt"))
    checkpoint = load_checkpoint(last)
    assert checkpoint["epoch"] == 2
    rng = next(v for k, v in checkpoint["callbacks"].items() if "ExactResume" in k)["rng"]
    assert set(rng) >= {"torch", "numpy", "python"}
    assert isinstance(rng["torch"], torch.Tensor)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mpcl", "mlp"])
def test_killed_protocol_run_rerun_is_bit_identical(model, tmp_path):
    config, model_args = CONFIGS[model]
    overrides = [*model_args, *tiny_data(tmp_path / "data"), "--trainer.max_epochs=4"]

    def runner(out, fault):
        args = ["run", "--config", str(config), "--protocol", "kfold", "--folds", "0", "1"]
        args += ["--seeds", "1", "--output", str(out), "--", *overrides]
        return run_worker(fault, "runner", args, tmp_path)

    assert runner(tmp_path / "a", "none").returncode == 0
    # Killed in the second fold's third epoch (2 batches per epoch), then in the rerun's first
    # checkpoint write.
    assert runner(tmp_path / "b", "batch:13").returncode == -9
    assert runner(tmp_path / "b", "write:1").returncode == -9
    rerun = runner(tmp_path / "b", "none")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    pd.testing.assert_frame_equal(fold_table(tmp_path / "a"), fold_table(tmp_path / "b"))
    for fold in ("fold-00-seed-1", "fold-01-seed-1"):
        assert results(tmp_path / "a" / fold) == results(tmp_path / "b" / fold)


@pytest.mark.slow
def test_unreadable_last_checkpoint_is_reported_and_the_fold_restarts(tmp_path):
    config, model_args = CONFIGS["mlp"]
    overrides = [*model_args, *tiny_data(tmp_path / "data"), "--trainer.max_epochs=3"]

    def runner(out, fault):
        args = ["run", "--config", str(config), "--protocol", "kfold", "--folds", "0"]
        args += ["--seeds", "1", "--output", str(out), "--", *overrides]
        return run_worker(fault, "runner", args, tmp_path)

    assert runner(tmp_path / "a", "none").returncode == 0
    assert runner(tmp_path / "b", "epoch:3").returncode == -9
    last = next((tmp_path / "b").glob("**/checkpoints/last.ckpt"))
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # truncated, as by a full disk under another writer
    rerun = runner(tmp_path / "b", "none")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert str(last) in rerun.stderr and "unreadable" in rerun.stderr
    assert (last.parent / "last.ckpt.unreadable").exists()
    pd.testing.assert_frame_equal(fold_table(tmp_path / "a"), fold_table(tmp_path / "b"))
    # A second rerun finds the fold finished: no loop of failures.
    again = runner(tmp_path / "b", "none")
    assert again.returncode == 0 and "finished earlier" in again.stdout


def test_an_unreadable_candidate_is_set_aside_once(tmp_path):
    from mpcl.resume_paths import usable_last_checkpoint

    run = tmp_path / "fold" / "mpcl" / "version_0" / "checkpoints"
    run.mkdir(parents=True)
    (run / "last.ckpt").write_bytes(b"PK\x03\x04 torn")
    path, note = usable_last_checkpoint(tmp_path / "fold")
    assert path is None
    assert str(run / "last.ckpt") in note and "unreadable" in note and "restarts" in note
    assert (run / "last.ckpt.unreadable").exists() and not (run / "last.ckpt").exists()
    assert usable_last_checkpoint(tmp_path / "fold") == (None, None)  # nothing left to retry


def test_checkpoints_are_staged_in_their_own_folder(tmp_path, monkeypatch):
    # Lightning staged checkpoint bytes through fsspec (a temporary file elsewhere, then a copy
    # across file systems); here the temporary file must sit beside the target.
    import datamodules.io
    from mpcl.checkpoints import AtomicCheckpointIO

    moves = []
    real_replace = os.replace
    monkeypatch.setattr(
        datamodules.io.os, "replace", lambda a, b: moves.append((a, b)) or real_replace(a, b)
    )
    target = tmp_path / "ckpts" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 3, "w": torch.ones(2)}, target)
    assert [(Path(a).parent, Path(b)) for a, b in moves] == [(target.parent, target)]
    assert load_checkpoint(target)["epoch"] == 3
