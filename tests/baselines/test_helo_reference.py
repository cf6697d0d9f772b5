"""HeLo reference mode: the released code's network (kaio-99/HeLo at 08dad27)."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest
import torch
from test_helo import DMER_PARAMETERS, make_batch

from datamodules.dmer import dmer_metadata
from datamodules.scoring import SCORED_KEY
from mpcl.baselines import HeLoModule
from mpcl.baselines.helo import (
    HeLoNet,
    HeLoReferenceNet,
    ReferenceAttention,
    additive_dropkey,
    class_axis_correlation,
    embedding_correlation,
    thresholded_cosine_cost,
)
from mpcl.cli import build_cli


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def linear(inputs: int, outputs: int, bias: bool = True) -> int:
    return inputs * outputs + (outputs if bias else 0)


# The released model with DMER shapes (D = 128, C = 10), layer by layer from models/model.py
# lines 87-121 and models/transformer_layers.py lines 10-14 and 54-61.
D, C = 128, 10
REFERENCE_ATTENTION = 3 * linear(D, D, bias=False) + 2 * D  # q, k, v without bias; LayerNorm
REFERENCE_PARAMETERS = (
    linear(5, D)  # eeg_encoder
    + linear(28, 18 * D)  # gsr_encoder
    + linear(27, 18 * D)  # ppg_encoder
    + REFERENCE_ATTENTION  # cross_attention (4 heads, no output projection)
    + linear(D, D)  # projection
    + linear(768, 36 * D)  # behavioral_encoder
    + REFERENCE_ATTENTION + linear(D, 64) + linear(64, D) + 2 * D  # transformer_layer
    + linear(C * D, C)  # linear: defined, never called
    + linear(72, C)  # fused_projection
    + REFERENCE_ATTENTION  # lcd_cross_attention (1 head)
    + linear(C * D, D) + linear(D, D) + linear(D, C)  # Classifier
)  # fmt: skip


def test_parameter_count_is_the_reference_count():
    assert REFERENCE_PARAMETERS == 4_052_526
    model = HeLoModule(dmer_metadata(), reference_quirks=True)
    assert isinstance(model.net, HeLoReferenceNet)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMETERS
    # the corrected default keeps its own layout
    assert sum(p.numel() for p in HeLoModule(dmer_metadata()).parameters()) == DMER_PARAMETERS
    blocks = [model.net.cross_attention, model.net.encoder.attention, model.net.label_attention]
    for block in blocks:
        assert all(layer.bias is None for layer in (block.query, block.key, block.value))
        assert not hasattr(block, "out")


def test_reference_mode_is_off_by_default_and_refuses_another_transport():
    assert inspect.signature(HeLoModule).parameters["reference_quirks"].default is False
    assert isinstance(HeLoModule(dmer_metadata()).net, HeLoNet)
    with pytest.raises(ValueError, match="transport"):
        HeLoModule(dmer_metadata(), reference_quirks=True, transport="barycentric")


def test_dropkey_adds_minus_1e12_and_an_all_dropped_row_is_uniform():
    torch.manual_seed(0)
    logits = torch.randn(4000, 3)
    dropped = additive_dropkey(logits, 0.5)
    hit = dropped < -1e11
    assert 0.47 < hit.float().mean() < 0.53
    torch.testing.assert_close(dropped[~hit], logits[~hit])
    all_dropped = hit.all(dim=-1)
    assert all_dropped.any()  # about 1 row in 8 with 3 keys; not rescued, unlike dropkey_mask
    uniform = torch.full((int(all_dropped.sum()), 3), 1 / 3)
    torch.testing.assert_close(dropped[all_dropped].softmax(-1), uniform)


def test_dropkey_is_on_in_evaluation_in_all_three_blocks():
    metadata = dmer_metadata()
    batch = make_batch(metadata, 4)
    net = HeLoModule(metadata, reference_quirks=True).net.eval()
    query, keys = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    for block in (net.cross_attention, net.encoder.attention, net.label_attention):
        assert block.dropkey == 0.5 and block.dropout.p == 0.5
    with torch.no_grad():
        a, b = net(batch)[0], net(batch)[0]
    assert not torch.allclose(a, b)
    # without DropKey, evaluation of a block is deterministic (its dropout is training-only)...
    block = ReferenceAttention(16, 2, dropkey=0.0, attention_dropout=0.5).eval()
    torch.testing.assert_close(block(query, keys)[0], block(query, keys)[0])
    # ...and in training the attention weights are dropped out after the softmax
    block.train()
    assert not torch.allclose(block(query, keys)[0], block(query, keys)[0])
    # with DropKey it is random in evaluation too
    keyed = ReferenceAttention(16, 2, dropkey=0.5, attention_dropout=0.0).eval()
    assert not torch.allclose(keyed(query, keys)[0], keyed(query, keys)[0])


def test_correlation_bias_is_added_before_the_scaling():
    torch.manual_seed(0)
    block = ReferenceAttention(16, 1, dropkey=0.0, attention_dropout=0.0).eval()
    query, keys, bias = torch.randn(3, 4, 16), torch.randn(3, 4, 16), 3 * torch.randn(3, 4, 4)
    _, weights = block(query, keys, bias)
    raw = block.query(query) @ block.key(keys).transpose(1, 2)
    expected = ((raw + bias) / math.sqrt(16)).softmax(-1)
    torch.testing.assert_close(weights.squeeze(1), expected)
    assert not torch.allclose(weights.squeeze(1), (raw / math.sqrt(16) + bias).softmax(-1))


def test_label_correlation_is_normalised_over_the_class_axis_per_sample():
    embeddings = torch.rand(2, C, D)
    correlation = class_axis_correlation(embeddings)
    assert correlation.shape == (2, C, C)
    unit_columns = embeddings / embeddings.norm(dim=1, keepdim=True)
    torch.testing.assert_close(correlation, unit_columns @ unit_columns.transpose(1, 2))
    # not the row-normalised Gram matrix of the corrected model (ones on the diagonal)
    assert not torch.allclose(correlation[0], embedding_correlation(embeddings[0]))
    assert not torch.allclose(torch.diagonal(correlation[0]), torch.ones(C))


def test_label_embeddings_are_fresh_noise_per_sample_and_not_learned():
    metadata = dmer_metadata()
    model = HeLoModule(metadata, reference_quirks=True).train()
    batch = make_batch(metadata, 3)
    for name in metadata.modality_shapes:
        batch[name] = batch[name][:1].expand_as(batch[name]).clone()  # three identical samples
    preds, aux = model(batch)
    correlation = aux["label_correlation"]
    assert correlation.shape == (3, C, C)
    assert not torch.allclose(correlation[0], correlation[1])  # one draw per sample
    model.compute_losses(batch, preds, aux)["loss"].backward()
    assert not any(
        "label" in name and "attention" not in name for name, _ in model.named_parameters()
    )
    # the Linear the reference defines and never calls gets no gradient
    assert model.net.unused_linear.weight.grad is None
    assert model.net.head[0].weight.grad is not None


def test_transport_is_the_plan_product_with_a_batch_wide_threshold():
    net = HeLoModule(dmer_metadata(), reference_quirks=True).net
    assert net.mining.transport == "plan" and net.mining.threshold_scope == "batch"
    torch.manual_seed(0)
    physiological, behavioral = torch.randn(2, 36, 8), torch.randn(2, 36, 8)
    moved, plan = net.mining(physiological, behavioral)
    torch.testing.assert_close(moved, plan @ physiological)
    # row sums of the plan are about 1/36: the tokens shrink by that much
    assert moved.norm() < physiological.norm() / 20
    # the batch-wide threshold makes a sample's cost depend on the rest of its batch
    tokens = torch.randn(2, 9, 5)
    other = tokens.clone()
    other[1] = torch.randn(9, 5)
    batch_a = thresholded_cosine_cost(tokens, scope="batch")[0]
    batch_b = thresholded_cosine_cost(other, scope="batch")[0]
    assert not torch.allclose(batch_a, batch_b)
    torch.testing.assert_close(
        thresholded_cosine_cost(tokens)[0], thresholded_cosine_cost(other)[0]
    )
    with pytest.raises(ValueError, match="scope"):
        thresholded_cosine_cost(tokens, scope="token")


@pytest.mark.filterwarnings("ignore:.*self.trainer.*")
def test_first_per_batch_scoring_scores_marked_rows_of_whole_batches():
    metadata = dmer_metadata()
    batch = make_batch(metadata, 6)
    batch["index"] = torch.arange(6)
    counts = {}
    for scored in (None, torch.tensor([True, False, False, False, False, False])):
        model = HeLoModule(metadata).eval()
        step_batch = dict(batch) if scored is None else {**batch, SCORED_KEY: scored}
        with torch.no_grad():
            model.test_step(step_batch, 0)
        counts[scored is None] = {int(metric.count) for metric in model.test_metrics.values()}
    assert counts == {True: {6}, False: {1}}


def test_reference_preset_under_the_published_protocol_through_the_cli(in_tmp_cwd):
    root = Path(__file__).resolve().parents[2] / "experiments"
    cli = build_cli(
        [
            "fit",
            *("--config", str(root / "synthetic" / "helo.yaml")),
            *("--config", str(root / "presets" / "helo_reference.yaml")),
            *("--config", str(root / "protocols" / "published.yaml")),
            "--data.init_args.num_subjects=2",
            "--data.init_args.rows_per_clip=4",
            f"--data.init_args.root={in_tmp_cwd / 'synthetic'}",
            "--data.init_args.batch_size=8",
            "--data.init_args.eval_batch_size=8",
            f"--data.init_args.split_file={in_tmp_cwd / 'split.json'}",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            "--test_after_fit=true",
        ]
    )
    assert isinstance(cli.model.net, HeLoReferenceNet)
    datamodule = cli.datamodule
    assert not datamodule.standardize and datamodule.protocol == "random-window"
    split = json.loads((in_tmp_cwd / "split.json").read_text())["splits"]
    assert split["val"]["rows"] == split["test"]["rows"]  # the epoch is chosen on test
    test_rows = len(split["test"]["rows"])  # 26 of subject 0's 128 rows: batches of 8, 8, 8, 2
    results = json.loads((Path(cli.trainer.log_dir) / "test_results.json").read_text())
    assert results["num_samples"] == math.ceil(test_rows / 8) == 4
