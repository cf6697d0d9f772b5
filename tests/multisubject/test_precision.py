"""The stacked engine's bf16-mixed precision and its compiled step.

bf16 changes the numbers (that is the point) but not the training: the test KL stays close to
the 32-bit run's. The compiled step computes the eager step's arithmetic (without dropout, whose
compiled masks come from another generator, the results agree to rounding).
"""

from __future__ import annotations

import json

import pytest
from many_subjects_helpers import MLP, write_config

from mpcl.multisubject import ManySubjectsRun
from mpcl.multisubject.trainer import FitSettings


def _run(tmp_path, config, name, overrides=(), compile=False):
    frame = ManySubjectsRun(
        [str(config)], "random-window", tmp_path / name, overrides=list(overrides), compile=compile
    ).run(log=lambda _: None)
    info = json.loads((tmp_path / name / "run_info.json").read_text())
    return frame[frame["method"] == "MLPModule"].set_index("fold")["kl"].sort_index(), info


def test_bf16_mixed_trains_close_to_32_bit(tmp_path, equal_dmer_dir):
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, MLP, epochs=3)
    full, info = _run(tmp_path, config, "fp32")
    half, half_info = _run(tmp_path, config, "bf16", ["--trainer.precision=bf16-mixed"])
    assert info["precision"] == "32-true" and half_info["precision"] == "bf16-mixed"
    gap = (full - half).abs()
    assert gap.max() > 0  # bf16 arithmetic was used
    assert gap.max() < 0.02, gap  # ... and training went the same way


def test_unsupported_precision_is_named(tmp_path, equal_dmer_dir):
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, MLP, epochs=1)
    with pytest.raises(NotImplementedError, match=r"trainer\.precision=64-true"):
        _run(tmp_path, config, "x", ["--trainer.precision=64-true"])
    with pytest.raises(ValueError, match="precision"):
        FitSettings(max_epochs=1, batch_size=2, eval_batch_size=2, precision="16-true")


@pytest.mark.slow
def test_compiled_step_equals_the_eager_step(tmp_path, equal_dmer_dir):
    model = {**MLP, "init_args": {**MLP["init_args"], "dropout": 0.0}}
    config = write_config(tmp_path / "mlp.yaml", equal_dmer_dir, model, epochs=2)
    eager, _ = _run(tmp_path, config, "eager")
    compiled, info = _run(tmp_path, config, "compiled", compile=True)
    assert info["compile"] is True
    assert (eager - compiled).abs().max() < 1e-5
