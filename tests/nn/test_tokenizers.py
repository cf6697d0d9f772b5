from __future__ import annotations

import pytest
import torch

from mpcl.nn.tokenizers import (
    FlatTokenizer,
    GroupedTokenizer,
    ModalityTokenizers,
    StructuredTokenizer,
    default_num_tokens,
)


def test_layouts_follow_metadata_shapes(dmer, make_batch):
    tokenizers = ModalityTokenizers(dmer, dim=16)
    assert isinstance(tokenizers.tokenizers["eeg"], StructuredTokenizer)
    assert isinstance(tokenizers.tokenizers["gsr"], FlatTokenizer)
    tokens = tokenizers(make_batch(dmer, 3))
    assert tokens["eeg"].shape == (3, 18, 16)
    assert tokens["gsr"].shape == (3, default_num_tokens(28), 16)
    assert tokens["ppg"].shape == (3, default_num_tokens(27), 16)
    assert tokens["face"].shape == (3, default_num_tokens(768), 16)


def test_default_token_counts_grow_with_size_and_are_capped():
    assert default_num_tokens(1) == 1
    assert default_num_tokens(4) == 2
    assert default_num_tokens(28) == 5
    assert default_num_tokens(768) == 8


def test_explicit_layouts_and_metadata_groups(dmer, dmer_grouped, make_batch):
    tokenizers = ModalityTokenizers(dmer, 8, tokens_per_modality={"gsr": 3, "eeg": 2})
    tokens = tokenizers(make_batch(dmer, 2))
    assert tokens["gsr"].shape == (2, 3, 8)
    assert tokens["eeg"].shape == (2, 2, 8)  # an explicit entry flattens a structured modality
    grouped = ModalityTokenizers(dmer_grouped, 8)
    assert isinstance(grouped.tokenizers["face"], GroupedTokenizer)
    assert grouped(make_batch(dmer, 2))["face"].shape == (2, 3, 8)


def test_structured_tokens_share_weights_across_rows():
    tokenizer = StructuredTokenizer("eeg", (4, 5), dim=6)
    x = torch.randn(2, 4, 5)
    x[:, 1] = x[:, 0]
    tokens = tokenizer(x)
    # Same row features: tokens differ only by the row embeddings.
    difference = tokens[:, 1] - tokens[:, 0]
    expected = tokenizer.row_embedding[1] - tokenizer.row_embedding[0]
    torch.testing.assert_close(difference, expected.expand_as(difference))


def test_grouped_tokens_only_see_their_group():
    tokenizer = GroupedTokenizer("face", (12,), groups=3, dim=5)
    x = torch.randn(2, 12)
    y = x.clone()
    y[:, 4:8] += 1.0  # change group 1 only
    diff = (tokenizer(x) - tokenizer(y)).abs().sum(dim=(0, 2))
    assert diff[0] == 0 and diff[2] == 0 and diff[1] > 0


def test_errors_name_modality_and_expectation(dmer, make_batch):
    tokenizers = ModalityTokenizers(dmer, 8)
    batch = make_batch(dmer, 2)
    batch["eeg"] = torch.randn(2, 90)
    with pytest.raises(ValueError, match=r"batch\['eeg'\].*\[18, 5\]"):
        tokenizers(batch)
    batch = make_batch(dmer, 2)
    del batch["gsr"]
    with pytest.raises(KeyError, match="gsr"):
        ModalityTokenizers(dmer, 8)(batch)
    with pytest.raises(ValueError, match=r"unknown modalities.*'emg'"):
        ModalityTokenizers(dmer, 8, tokens_per_modality={"emg": 2})
    with pytest.raises(ValueError, match="divisor"):
        ModalityTokenizers(dmer, 8, token_groups={"gsr": 5})
    with pytest.raises(ValueError, match="both"):
        ModalityTokenizers(dmer, 8, tokens_per_modality={"gsr": 2}, token_groups={"gsr": 2})


def test_input_dropout_zeroes_raw_features_in_training_only(dmer_grouped, make_batch):
    torch.manual_seed(0)
    plain = ModalityTokenizers(dmer_grouped, 8).train()
    dropping = ModalityTokenizers(dmer_grouped, 8, input_dropout=0.5).train()
    dropping.load_state_dict(plain.state_dict())  # same weights: only the dropout differs
    assert plain.input_dropout is None
    batch = make_batch(dmer_grouped, 64)
    seen = {}
    hooks = [
        tokenizer.register_forward_pre_hook(lambda m, args, n=name: seen.update({n: args[0]}))
        for name, tokenizer in dropping.tokenizers.items()
    ]
    dropping(batch)
    for hook in hooks:
        hook.remove()
    for name in dmer_grouped.modalities:
        zeroed = float((seen[name] == 0).float().mean())
        assert 0.4 < zeroed < 0.6, (name, zeroed)  # about half of every modality's features
        kept = seen[name] != 0
        torch.testing.assert_close(seen[name][kept], 2.0 * batch[name][kept])  # 1 / (1 - p)
    plain.eval(), dropping.eval()
    for name, tokens in dropping(batch).items():
        torch.testing.assert_close(tokens, plain(batch)[name])  # no dropout in eval


def test_token_ffn_makes_tokens_nonlinear_in_the_features(dmer_grouped, make_batch):
    torch.manual_seed(0)
    linear = ModalityTokenizers(dmer_grouped, 8).eval()
    refined = ModalityTokenizers(dmer_grouped, 8, token_ffn=True).eval()
    assert linear.refiners is None
    assert set(refined.refiners) == set(dmer_grouped.modalities)
    a, b = make_batch(dmer_grouped, 4), make_batch(dmer_grouped, 4)
    mixed = {k: a[k] + b[k] for k in dmer_grouped.modalities}
    zero = {k: torch.zeros_like(a[k]) for k in dmer_grouped.modalities}

    def superposition_gap(tokenizers: ModalityTokenizers) -> float:
        # f(a + b) - f(a) - f(b) + f(0) vanishes for an affine map and only for one.
        ta, tb, tm, t0 = (tokenizers(x)["face"] for x in (a, b, mixed, zero))
        return float((tm - ta - tb + t0).abs().max())

    assert superposition_gap(linear) < 1e-5
    assert superposition_gap(refined) > 1e-2
    tokens = refined(a)["face"]
    assert tokens.shape == (4, 3, 8)
    # LN(t + FFN(t)): every token is normalised
    assert torch.allclose(tokens.mean(-1), torch.zeros(4, 3), atol=1e-5)
