"""The six label-distribution metrics: hand-computed values, PyLDL agreement, directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mpcl.metrics import (
    HIGHER_IS_BETTER,
    LDL_METRIC_FUNCTIONS,
    LDL_METRICS,
    LDLMetrics,
    canberra,
    chebyshev,
    clark,
    cosine,
    intersection,
    kl_divergence,
)

pyldl_metrics = pytest.importorskip("pyldl.metrics")

TARGET = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
PREDS = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)


def test_hand_computed_values():
    # |d - p| = (0.3, 0, 0.3); d + p = (0.7, 0.6, 0.7)
    assert chebyshev(PREDS, TARGET).item() == pytest.approx(0.3, abs=1e-15)
    assert canberra(PREDS, TARGET).item() == pytest.approx(0.6 / 0.7, abs=1e-15)
    assert clark(PREDS, TARGET).item() == pytest.approx(math.sqrt(2 * (0.3 / 0.7) ** 2), abs=1e-15)
    expected_kl = 0.5 * math.log(0.5 / 0.2) + 0.2 * math.log(0.2 / 0.5)
    assert kl_divergence(PREDS, TARGET).item() == pytest.approx(expected_kl, abs=1e-15)
    # d . p = 0.1 + 0.09 + 0.1 = 0.29; |d|^2 = |p|^2 = 0.38
    assert cosine(PREDS, TARGET).item() == pytest.approx(0.29 / 0.38, abs=1e-15)
    assert intersection(PREDS, TARGET).item() == pytest.approx(0.2 + 0.3 + 0.2, abs=1e-15)


def test_identical_distributions_are_perfect():
    d = torch.softmax(torch.randn(7, 5, dtype=torch.float64), dim=1)
    for name, function in LDL_METRIC_FUNCTIONS.items():
        best = 1.0 if HIGHER_IS_BETTER[name] else 0.0
        torch.testing.assert_close(function(d, d), torch.full((7,), best, dtype=torch.float64))


def test_zeros_in_prediction_stay_finite_through_clipping():
    target = torch.tensor([[1.0, 0.0, 0.0]])
    preds = torch.tensor([[0.0, 0.5, 0.5]])
    eps = torch.finfo(torch.float64).eps
    # KL with p_1 clipped to eps: 1 * ln(1 / eps)
    assert kl_divergence(preds, target).item() == pytest.approx(-math.log(eps))
    # each emotion contributes |d - p| / (d + p) = 1 (up to eps)
    assert canberra(preds, target).item() == pytest.approx(3.0)


def test_directions_and_order():
    assert [m.name for m in LDL_METRICS] == [
        "chebyshev",
        "clark",
        "canberra",
        "kl",
        "cosine",
        "intersection",
    ]
    assert {n for n, higher in HIGHER_IS_BETTER.items() if higher} == {"cosine", "intersection"}
    for name, metric in LDLMetrics().items():
        assert metric.higher_is_better is HIGHER_IS_BETTER[name]


@pytest.mark.parametrize("bad", [torch.ones(3, 4), torch.ones(2, 3, 1)])
def test_shape_errors_name_the_shapes(bad):
    with pytest.raises(ValueError, match=r"shape|expected"):
        chebyshev(bad, torch.ones(2, 3))


def _random_distributions(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    x = rng.gamma(0.7, size=(n, c))
    return x / x.sum(axis=1, keepdims=True)


def _edge_cases(c: int) -> tuple[np.ndarray, np.ndarray]:
    eye = np.eye(c)
    uniform = np.full((c, c), 1.0 / c)
    zeros = np.zeros((1, c))
    rolled = np.roll(eye, 1, axis=1)
    # one-hot vs itself / another one-hot / uniform, uniform vs itself / one-hot, zero rows
    target = np.concatenate([eye, eye, eye, uniform, uniform, zeros, zeros, uniform[:1]])
    preds = np.concatenate([eye, rolled, uniform, uniform, eye, uniform[:1], zeros, zeros])
    return target, preds


@pytest.mark.parametrize("case", ["random", "edge"])
def test_agreement_with_pyldl(case):
    rng = np.random.default_rng(0)
    if case == "random":
        target, preds = _random_distributions(rng, 500, 10), _random_distributions(rng, 500, 10)
    else:
        target, preds = _edge_cases(10)
    reference = {
        "chebyshev": pyldl_metrics.chebyshev,
        "clark": pyldl_metrics.clark,
        "canberra": pyldl_metrics.canberra,
        "kl": pyldl_metrics.kl_divergence,
        "cosine": pyldl_metrics.cosine,
        "intersection": pyldl_metrics.intersection,
    }
    collection = LDLMetrics()
    # uneven batches, so accumulation across updates is exercised too
    for start, stop in [(0, 3), (3, 4), (4, len(target))]:
        collection.update(torch.from_numpy(preds[start:stop]), torch.from_numpy(target[start:stop]))
    ours = {k: v.item() for k, v in collection.compute().items()}
    for name, function in reference.items():
        expected = float(function(target, preds))
        if case == "edge" and name == "intersection":
            # PyLDL computes 1 - |d - p|_1 / 2, which equals sum(min) only for normalised rows;
            # compare on the rows that are distributions.
            keep = (target.sum(1) > 0) & (preds.sum(1) > 0)
            expected = float(function(target[keep], preds[keep]))
            mask = torch.from_numpy(keep)
            ours_kept = intersection(torch.from_numpy(preds), torch.from_numpy(target))[mask]
            assert ours_kept.mean().item() == pytest.approx(expected, abs=1e-10)
            continue
        assert ours[name] == pytest.approx(expected, abs=1e-10), name


def test_float32_inputs_are_scored_in_float64():
    rng = np.random.default_rng(1)
    target = _random_distributions(rng, 64, 6)
    preds = _random_distributions(rng, 64, 6)
    high = kl_divergence(torch.from_numpy(preds), torch.from_numpy(target))
    low = kl_divergence(torch.from_numpy(preds).float(), torch.from_numpy(target).float())
    assert low.dtype == torch.float64
    torch.testing.assert_close(low, high, atol=1e-6, rtol=0)


def test_metric_before_update_is_nan_and_reset_clears():
    collection = LDLMetrics(prefix="val/")
    collection.update(PREDS, TARGET)
    assert set(collection.compute()) == {f"val/{m.name}" for m in LDL_METRICS}
    collection.reset()
    collection.update(TARGET, TARGET)
    assert collection.compute()["val/kl"].item() == pytest.approx(0.0, abs=1e-15)


def test_docstring_examples():
    import doctest

    import mpcl.metrics.ldl

    failures, tried = doctest.testmod(mpcl.metrics.ldl, extraglobs={"torch": torch})
    assert tried >= 6 and failures == 0
