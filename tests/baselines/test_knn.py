"""AA-kNN: neighbour search, self-retrieval with k = 1, neighbour averaging, checkpoints."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import SMALL, assert_distributions, make_table

from mpcl.baselines import AAKNNModule
from mpcl.baselines.fitted import concat_features
from mpcl.baselines.knn import nearest_neighbours


def fitted(k: int, rows: int = 50, **kwargs) -> tuple[AAKNNModule, dict]:
    train = make_table(rows)
    model = AAKNNModule(SMALL, k=k, **kwargs)
    model.fit_training_split(train, None)
    return model, train


def test_k1_on_training_rows_returns_their_own_targets():
    model, train = fitted(k=1)
    preds, aux = model(train)
    torch.testing.assert_close(preds, train["target"])
    assert aux["neighbour_rows"][:, 0].tolist() == list(range(50))


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_search_equals_brute_force(chunk_size):
    generator = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(13, 5, generator=generator), torch.randn(40, 5, generator=generator)
    dist, idx = nearest_neighbours(queries, bank, k=6, chunk_size=chunk_size)
    full = torch.cdist(queries, bank)
    expected_dist, expected_idx = full.topk(6, dim=1, largest=False)
    torch.testing.assert_close(dist, expected_dist)
    assert torch.equal(idx, expected_idx)


def test_prediction_is_the_mean_of_the_k_nearest_targets():
    model, train = fitted(k=4, chunk_size=9)
    query = make_table(6, seed=5)
    preds, _ = model(query)
    assert_distributions(preds, 6, SMALL.num_emotions)
    distances = torch.cdist(
        concat_features(query, SMALL.modalities), concat_features(train, SMALL.modalities)
    )
    nearest = distances.topk(4, dim=1, largest=False).indices
    torch.testing.assert_close(preds, train["target"][nearest].mean(1))


def test_k_larger_than_the_bank_uses_every_row():
    with pytest.warns(UserWarning, match="exceeds"):
        model, train = fitted(k=100, rows=8)
    preds, _ = model(make_table(3, seed=9))
    torch.testing.assert_close(preds, train["target"].mean(0).expand(3, -1))


def test_bank_survives_a_state_dict_round_trip():
    model, _ = fitted(k=3)
    fresh = AAKNNModule(SMALL, k=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh(make_table(2))
    fresh.load_state_dict(model.state_dict())
    query = make_table(4, seed=2)
    torch.testing.assert_close(fresh(query)[0], model(query)[0])
