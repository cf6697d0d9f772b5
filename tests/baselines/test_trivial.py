"""Trivial predictors: uniform, training mean, per-subject training mean."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from baseline_helpers import SMALL, assert_distributions, make_table, tiny_synthetic

from mpcl.baselines import SubjectMeanModule, TrainMeanModule, UniformModule
from mpcl.baselines.trivial import _constant_prediction, subject_means


def test_uniform_predicts_one_over_c():
    batch = make_table(7)
    preds, aux = UniformModule(SMALL)(batch)
    assert_distributions(preds, 7, SMALL.num_emotions)
    torch.testing.assert_close(preds, torch.full((7, 5), 0.2))
    torch.testing.assert_close(aux["log_probs"], preds.log())


def test_train_mean_matches_the_datamodule(tmp_path):
    datamodule = tiny_synthetic(tmp_path)
    model = TrainMeanModule(datamodule.metadata)
    with pytest.raises(RuntimeError, match="not fitted"):
        model(datamodule.split_rows("test"))
    model.fit_training_split(datamodule.split_rows("train"), datamodule)
    test = datamodule.split_rows("test")
    preds, _ = model(test)
    assert_distributions(preds, len(test["target"]), datamodule.metadata.num_emotions)
    expected = datamodule.split_rows("train")["target"].double().mean(0)
    torch.testing.assert_close(preds[0].double(), expected / expected.sum(), atol=1e-6, rtol=0)
    assert bool((preds == preds[0]).all())


def test_subject_means_equal_a_hand_computation():
    table = make_table(40, subjects=3)
    ids, means = subject_means(table["subject"], table["target"])
    assert ids.tolist() == sorted(set(table["subject"].tolist()))
    for subject, mean in zip(ids.tolist(), means, strict=True):
        rows = [i for i in range(40) if int(table["subject"][i]) == subject]
        hand = sum(table["target"][i].double() for i in rows) / len(rows)
        torch.testing.assert_close(mean.double(), hand, atol=1e-6, rtol=0)


def test_subject_mean_predicts_each_rows_subject_mean():
    train, test = make_table(40, seed=1), make_table(9, seed=2)
    model = SubjectMeanModule(SMALL)
    model.fit_training_split(train, SimpleNamespace(protocol="random-window"))
    preds, _ = model(test)
    assert_distributions(preds, 9, SMALL.num_emotions)
    for row in range(9):
        own = train["subject"] == test["subject"][row]
        hand = train["target"][own].double().mean(0)
        torch.testing.assert_close(preds[row].double(), hand, atol=1e-6, rtol=0)


@pytest.mark.parametrize("protocol", ["kfold", "loso"])
def test_subject_mean_refuses_subject_independent_protocols(protocol):
    model = SubjectMeanModule(SMALL)
    with pytest.raises(ValueError, match="subject-dependent"):
        model.fit_training_split(make_table(10), SimpleNamespace(protocol=protocol))


def test_subject_mean_refuses_unseen_subjects():
    model = SubjectMeanModule(SMALL)
    model.fit_training_split(make_table(30), SimpleNamespace(protocol="temporal"))
    batch = make_table(4)
    batch["subject"] = torch.tensor([3, 10, 999, 3])
    with pytest.raises(ValueError, match=r"\[999\]"):
        model(batch)


def test_data_sized_buffers_load_into_a_fresh_module():
    fitted = SubjectMeanModule(SMALL)
    fitted.fit_training_split(make_table(30), SimpleNamespace(protocol="temporal"))
    fresh = SubjectMeanModule(SMALL)
    assert not fresh.is_fitted
    fresh.load_state_dict(fitted.state_dict())
    batch = make_table(5, seed=3)
    torch.testing.assert_close(fresh(batch)[0], fitted(batch)[0])


def test_constant_predictors_need_no_target():
    batch = {"subject": torch.zeros(5, dtype=torch.long), "eeg": torch.zeros(5, 18, 5)}
    preds, aux = _constant_prediction(batch, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert preds.shape == (5, 2) and preds.dtype == torch.float32
    torch.testing.assert_close(preds.sum(-1), torch.ones(5))
    assert aux["log_probs"].shape == (5, 2)
