"""SA-BFGS: analytic gradient, L-BFGS fit, predictions."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import SMALL, assert_distributions, make_table

from mpcl.baselines import SABFGSModule
from mpcl.baselines.fitted import concat_features
from mpcl.baselines.sa_bfgs import sa_bfgs_objective
from mpcl.losses import kl_divergence_loss


def teacher_problem(n: int = 200, seed: int = 0) -> dict:
    """Rows whose targets come from a softmax-linear teacher: learnable by SA-BFGS."""
    table = make_table(n, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    width = sum(SMALL.feature_dim(m) for m in SMALL.modalities)
    teacher = torch.randn(SMALL.num_emotions, width, generator=generator) * 0.5
    table["target"] = torch.softmax(concat_features(table, SMALL.modalities) @ teacher.T, dim=-1)
    return table


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_analytic_gradient_matches_autograd_and_finite_differences(weight_decay):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    target = torch.softmax(torch.randn(30, 4, generator=generator, dtype=torch.float64), dim=-1)
    weight = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True)
    value, grad_w, grad_b = sa_bfgs_objective(weight, bias, features, target, weight_decay)
    auto_w, auto_b = torch.autograd.grad(value, (weight, bias))
    torch.testing.assert_close(grad_w, auto_w)
    torch.testing.assert_close(grad_b, auto_b)
    # central differences on a few entries, independent of autograd
    step = 1e-6
    with torch.no_grad():
        for i, j in [(0, 0), (2, 5), (3, 1)]:
            plus, minus = weight.clone(), weight.clone()
            plus[i, j] += step
            minus[i, j] -= step
            numeric = (
                sa_bfgs_objective(plus, bias, features, target, weight_decay)[0]
                - sa_bfgs_objective(minus, bias, features, target, weight_decay)[0]
            ) / (2 * step)
            assert abs(float(numeric) - float(grad_w[i, j])) < 1e-6


def test_objective_value_is_mean_kl_plus_penalty():
    table = make_table(20)
    features = concat_features(table, SMALL.modalities).double()
    target = table["target"].double()
    weight = torch.randn(SMALL.num_emotions, features.shape[1], dtype=torch.float64) * 0.1
    bias = torch.zeros(SMALL.num_emotions, dtype=torch.float64)
    value, _, _ = sa_bfgs_objective(weight, bias, features, target, weight_decay=0.5)
    log_p = torch.log_softmax(features @ weight.T + bias, dim=-1)
    expected = kl_divergence_loss(target, log_p) + 0.25 * weight.pow(2).sum()
    torch.testing.assert_close(value, expected)


def test_fit_reduces_kl_far_below_uniform():
    train, test = teacher_problem(300, seed=0), teacher_problem(100, seed=0)
    model = SABFGSModule(SMALL, weight_decay=0.0, max_iter=300)
    model.fit_training_split(train, None)
    report = model.fit_report
    assert report.final_objective < 0.1 * report.initial_objective
    preds, aux = model(test)
    assert_distributions(preds, 100, SMALL.num_emotions)
    uniform = torch.full_like(preds, 1.0 / SMALL.num_emotions)
    model_kl = kl_divergence_loss(test["target"], aux["log_probs"])
    uniform_kl = kl_divergence_loss(test["target"], uniform.log())
    assert float(model_kl) < 0.2 * float(uniform_kl)


def test_weight_decay_shrinks_the_weights():
    train = teacher_problem(150)
    norms = []
    for weight_decay in (0.0, 1.0):
        model = SABFGSModule(SMALL, weight_decay=weight_decay, max_iter=200)
        model.fit_training_split(train, None)
        norms.append(float(model.weight.norm()))
    assert norms[1] < 0.5 * norms[0]


def test_unfitted_model_refuses_to_predict_and_fit_state_is_saved():
    model = SABFGSModule(SMALL)
    with pytest.raises(RuntimeError, match="not fitted"):
        model(make_table(3))
    model.fit_training_split(teacher_problem(60), None)
    fresh = SABFGSModule(SMALL)
    fresh.load_state_dict(model.state_dict())
    batch = make_table(4, seed=4)
    torch.testing.assert_close(fresh(batch)[0], model(batch)[0])
