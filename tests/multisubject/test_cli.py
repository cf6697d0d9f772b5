"""`python -m mpcl.multisubject`: the protocol runner's layout, readable by its aggregation."""

from __future__ import annotations

import json

import pytest
from many_subjects_helpers import MLP, SUBJECTS, write_config

from mpcl.multisubject.cli import main
from mpcl.runner import read_folds
from mpcl.runner.cli import main as protocol_main


def test_run_layout_and_compare(tmp_path, equal_dmer_dir, capsys):
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, MLP, epochs=2)
    output = tmp_path / "run"
    args = ["--config", str(config), "--protocol", "temporal", "--output", str(output)]
    assert main([*args, "--save-last", "--max-group", "2", "--", "--trainer.max_epochs=1"]) == 0
    folds = read_folds(output)
    assert sorted(folds["fold"].unique()) == [0, 1, 2]
    assert sorted(folds["subject"].unique()) == list(SUBJECTS)
    assert set(folds["method"]) == {"MLPModule", "train-mean", "uniform"}
    info = json.loads((output / "run_info.json").read_text())
    assert info["protocol"] == "temporal" and info["overrides"] == ["--trainer.max_epochs=1"]
    for fold in range(3):
        fold_dir = output / f"fold-{fold:02d}-seed-3407"
        results = json.loads((fold_dir / "test_results.json").read_text())
        assert results["ckpt_path"].endswith("best-000.ckpt")
        assert (fold_dir / "checkpoints" / "last.ckpt").is_file()
    assert "MLPModule" in (output / "summary.md").read_text()

    assert protocol_main(["compare", str(output)]) == 0
    assert "| MLPModule |" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="holds a finished run"):
        main(args)


def test_unsupported_settings_are_named(tmp_path, equal_dmer_dir):
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, MLP, epochs=1)
    base = ["--config", str(config), "--output", str(tmp_path / "x")]
    with pytest.raises(SystemExit):
        main([*base, "--protocol", "kfold"])
    with pytest.raises(NotImplementedError, match="accumulate_grad_batches=2"):
        main([*base, "--protocol", "random-window", "--", "--trainer.accumulate_grad_batches=2"])
