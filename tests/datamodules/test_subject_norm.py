"""Per-subject standardisation: the function and the datamodule option that applies it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from datamodule_fakes import ToyDataModule, make_table

from datamodules.subject_norm import standardize_per_subject
from datamodules.table import FeatureTable


def _shifted_table(seed: int = 0, with_grid: bool = True) -> FeatureTable:
    """``make_table`` with a random offset and gain per subject and feature (and a 2-D modality)."""
    table = make_table(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    subjects, group = torch.unique(table.subject, return_inverse=True)
    offset = torch.randn(len(subjects), 3, generator=gen) * 50
    gain = torch.rand(len(subjects), 3, generator=gen) * 5 + 0.5
    noise = torch.randn(len(table), 3, generator=gen)
    x = (table.features["x"] + noise) * gain[group] + offset[group]
    grid = torch.randn(len(table), 2, 4, generator=gen) + offset[group, :1, None]
    features = {"x": x, "grid": grid} if with_grid else {"x": x}
    return dataclasses.replace(table, features=features)


def _loop_reference(values: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(values, dtype=torch.float64)
    for s in torch.unique(subject):
        rows = subject == s
        chunk = values[rows].double()
        std = chunk.std(0, correction=0)
        out[rows] = (chunk - chunk.mean(0)) / torch.where(std < 1e-6, torch.ones_like(std), std)
    return out.float()


def test_every_subject_comes_out_with_zero_mean_and_unit_std():
    table = _shifted_table()
    result = standardize_per_subject(table)
    assert result.features["grid"].shape == (len(table), 2, 4)
    for name in ("x", "grid"):
        expected = _loop_reference(table.features[name], table.subject)
        torch.testing.assert_close(result.features[name], expected, atol=1e-5, rtol=1e-5)
        assert result.features[name].is_contiguous()
    for s in table.subjects:
        rows = result.features["x"][table.subject == s].double()
        assert rows.mean(0) == pytest.approx(torch.zeros(3), abs=1e-5)
        assert rows.std(0, correction=0) == pytest.approx(torch.ones(3), abs=1e-5)
    # the labels and the bookkeeping columns are untouched
    assert torch.equal(result.target, table.target)
    assert torch.equal(result.subject, table.subject)


def test_feature_constant_within_a_subject_is_centred_not_divided_by_zero():
    table = _shifted_table()
    first = table.subject == table.subjects[0]
    table.features["x"][first, 2] = 3.0
    result = standardize_per_subject(table)
    assert torch.equal(result.features["x"][first, 2], torch.zeros(int(first.sum())))
    assert torch.isfinite(result.features["x"]).all()


def test_option_makes_the_datamodule_blind_to_a_subjects_offset_and_gain():
    base_table = _shifted_table(with_grid=False)
    plain = ToyDataModule(base_table, num_folds=3, subject_standardize=True)
    plain.setup()
    test_subject = int(base_table.subject[plain.splits["test"][0]])
    # the same recordings, but that test subject's sensor reads 10x higher with an offset
    moved = dataclasses.replace(base_table, features=dict(base_table.features))
    rows = moved.subject == test_subject
    moved.features["x"] = moved.features["x"].clone()
    moved.features["x"][rows] = moved.features["x"][rows] * 10 - 40
    shifted = ToyDataModule(moved, num_folds=3, subject_standardize=True)
    shifted.setup()
    torch.testing.assert_close(shifted.table.features["x"], plain.table.features["x"])
    # without the option the change shows through
    off = ToyDataModule(moved, num_folds=3)
    off.setup()
    assert not torch.allclose(off.table.features["x"][rows], plain.table.features["x"][rows])


class _PredictingToy(ToyDataModule):
    def __init__(self, table: FeatureTable, predict_table: FeatureTable, **kwargs) -> None:
        super().__init__(table, **kwargs)
        self.predict_source = predict_table

    def has_predict_source(self) -> bool:
        return True

    def load_predict_table(self) -> FeatureTable:
        return self.predict_source


def test_prediction_rows_are_standardised_per_subject_then_with_training_statistics():
    table = _shifted_table(seed=1, with_grid=False)
    new_subject = _shifted_table(seed=2, with_grid=False)
    datamodule = _PredictingToy(table, new_subject, num_folds=3, subject_standardize=True)
    datamodule.setup()
    rows = datamodule._predict_rows()
    mean, std = datamodule.feature_mean["x"], datamodule.feature_std["x"]
    expected = (standardize_per_subject(new_subject).features["x"] - mean) / std
    torch.testing.assert_close(rows["x"], expected, atol=1e-5, rtol=1e-5)


def test_checkpoint_state_records_the_setting_and_refuses_the_other_one():
    trained = ToyDataModule(_shifted_table(with_grid=False), num_folds=3, subject_standardize=True)
    trained.setup()
    state = trained.state_dict()
    assert state["subject_standardize"] is True
    same = ToyDataModule(_shifted_table(with_grid=False), num_folds=3, subject_standardize=True)
    same.load_state_dict(state)
    torch.testing.assert_close(same.feature_mean["x"], trained.feature_mean["x"])
    other = ToyDataModule(_shifted_table(with_grid=False), num_folds=3)
    with pytest.raises(ValueError, match=r"subject_standardize=True.*subject_standardize=False"):
        other.load_state_dict(state)
