"""The test-time extraction pass: one row per test window, MPCL's internals, safe files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_helpers import MPCL, tiny

from mpcl.run_folder import read_test_outputs, write_test_outputs


def test_mpcl_run_saves_every_test_window_once(mpcl_run):
    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    results = json.loads((mpcl_run / "test_results.json").read_text())
    n, c = outputs["preds"].shape
    assert n == results["num_samples"] and c == 10
    assert np.all(np.diff(outputs["index"]) > 0)  # sorted by row id, each row once
    np.testing.assert_allclose(outputs["preds"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(outputs["target"].sum(1), 1.0, atol=1e-5)
    assert outputs["cooccurrence"].shape == (n, c, c)
    assert outputs["relations_physiological"].shape == (n, c, c - 1)
    assert outputs["branch_gate"].shape == (n, c)
    assert outputs["scale_gate_physiological"].shape == (n, 3)
    assert outputs["bank_behavioral"].shape == (c, 4, 128)
    assert outputs["train_target_second_moment"].shape == (c, c)
    assert set(np.unique(outputs["category"])) <= {0, 1, 2}
    assert outputs.meta["model"] == "MPCLModule"
    assert outputs.category_names == {0: "positive clip", 1: "negative clip", 2: "mixed clip"}


def test_saved_predictions_equal_the_logged_test_metric(mpcl_run):
    """The saved rows are the rows the test metrics were computed on."""
    from mpcl.metrics.functional import kl_divergence

    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    import torch

    kl = kl_divergence(torch.from_numpy(outputs["preds"]), torch.from_numpy(outputs["target"]))
    logged = json.loads((mpcl_run / "test_results.json").read_text())["results"]["MPCLModule"]
    assert float(kl.mean()) == pytest.approx(logged["kl"], rel=1e-4)


def test_train_target_moment_matches_the_training_split(mpcl_run):
    from mpcl.cli import build_cli

    root = mpcl_run.parents[2]
    cli = build_cli(["--config", MPCL, *tiny(root / "data")], run=False)
    cli.datamodule.setup("fit")
    train = cli.datamodule.split_rows("train")["target"].double().numpy()
    outputs = read_test_outputs(mpcl_run / "test_outputs.npz")
    np.testing.assert_allclose(
        outputs["train_target_second_moment"], train.T @ train / len(train), rtol=1e-10
    )
    test_rows = cli.datamodule.split_rows("test")["index"].numpy()
    np.testing.assert_array_equal(np.sort(test_rows), outputs["index"])


def test_write_refuses_object_arrays_and_never_overwrites(tmp_path):
    arrays = {
        "preds": np.full((2, 2), 0.5),
        "target": np.full((2, 2), 0.5),
        "subject": np.zeros(2),
        "trial": np.zeros(2),
        "index": np.arange(2),
    }
    meta = {"emotion_names": ["a", "b"], "valence_groups": [0, 1]}
    first = write_test_outputs(tmp_path, arrays, meta)
    second = write_test_outputs(tmp_path, arrays, meta)
    assert first.name == "test_outputs.npz" and second.name == "test_outputs-1.npz"
    with pytest.raises(TypeError, match="object arrays"):
        write_test_outputs(tmp_path, {**arrays, "bad": np.array([{}], dtype=object)}, meta)
    with pytest.raises(ValueError, match=r"\['index'\] are missing"):
        write_test_outputs(tmp_path, {k: v for k, v in arrays.items() if k != "index"}, meta)


def test_read_names_the_file_and_the_problem(tmp_path):
    np.savez(tmp_path / "test_outputs.npz", preds=np.ones((2, 3)))
    (tmp_path / "test_outputs.json").write_text(json.dumps({"emotion_names": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match=r"test_outputs.npz: arrays \['target'"):
        read_test_outputs(tmp_path / "test_outputs.npz")
    (tmp_path / "test_outputs.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_outputs\.json: missing"):
        read_test_outputs(tmp_path / "test_outputs.npz")
