"""HeLo baseline: sizes from metadata, distributions, the transport plan, quirks, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datamodules.dmer import dmer_metadata
from datamodules.metadata import DatasetMetadata
from mpcl.baselines import HeLoModule
from mpcl.baselines.helo import (
    DropKeyAttention,
    HeterogeneityMining,
    dropkey_mask,
    embedding_correlation,
    gromov_wasserstein_plan,
    ipot,
    target_correlation,
    thresholded_cosine_cost,
)
from mpcl.cli import build_cli
from mpcl.losses import kl_divergence_loss

CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "synthetic" / "helo.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tensors are small, and on a shared CPU two threads of tiny ops
    were measured 10x slower than one (thread hand-off dominates)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def other_metadata() -> DatasetMetadata:
    """A non-DMER layout: flat anchor, two behavioral modalities (one structured)."""
    return DatasetMetadata(
        emotion_names=("a", "b", "c", "d", "e", "f"),
        valence_groups=(0, 0, 0, 1, 1, 1),
        modality_shapes={"ecg": (12,), "eda": (8,), "resp": (9,), "acc": (4, 3), "wrist": (9,)},
        physiological=("ecg", "eda", "resp"),
        behavioral=("acc", "wrist"),
        name="other",
    )


def make_batch(metadata: DatasetMetadata, batch_size: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    batch = {
        name: torch.randn(batch_size, *shape, generator=generator)
        for name, shape in metadata.modality_shapes.items()
    }
    logits = 2 * torch.randn(batch_size, metadata.num_emotions, generator=generator)
    batch["target"] = torch.softmax(logits, dim=-1)
    return batch


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def attention(dim: int) -> int:
    return 4 * linear(dim, dim)  # query, key, value, output projections


def layer_norm(dim: int) -> int:
    return 2 * dim


# HeLo with DMER shapes, layer by layer as docs/baselines.md ('The network') describes it
# (D = 128, C = 10): 3,675,648 in the tokenizers (face alone 3,543,552), 4,091,684 in all.
D, C = 128, 10
DMER_PARAMETERS = (
    linear(5, D)  # EEG: 18 channel tokens, Linear 5 -> D shared by the channels
    + linear(28, 18 * D)  # GSR: 18 tokens
    + linear(27, 18 * D)  # PPG: 18 tokens
    + linear(768, 36 * D)  # face: 36 tokens
    + attention(D) + layer_norm(D)  # shared cross-attention block (4 heads), post-LN
    + linear(D, D)  # projection of the 36 fused physiological tokens
    + attention(D) + linear(D, 64) + linear(64, D) + 2 * layer_norm(D)  # shared encoder layer
    + linear(72, C)  # Linear over the token axis, 72 -> C
    + C * D  # label embeddings
    + attention(D) + layer_norm(D)  # label-correlation-driven cross-attention (1 head)
    + linear(C * D, 128) + linear(128, 128) + linear(128, C)  # MLP head
)  # fmt: skip
# "About 4.05 M" (three significant digits) in the description; the attention layout (output
# projections, biases) is not pinned down there and moves the count by about 33 k (0.8 %).
PUBLISHED_PARAMETERS, TOLERANCE = 4.05e6, 0.02


def test_parameter_count_with_dmer_shapes():
    model = HeLoModule(dmer_metadata())
    count = sum(p.numel() for p in model.parameters())
    assert count == DMER_PARAMETERS == 4_091_684
    assert abs(count - PUBLISHED_PARAMETERS) <= TOLERANCE * PUBLISHED_PARAMETERS
    assert sum(p.numel() for p in model.net.tokenizers.parameters()) == 3_675_648


def test_token_counts_come_from_metadata():
    dmer = HeLoModule(dmer_metadata()).net.tokenizers
    assert {name: t.num_tokens for name, t in dmer.items()} == {
        "eeg": 18, "gsr": 18, "ppg": 18, "face": 36,
    }  # fmt: skip
    other = HeLoModule(other_metadata()).net.tokenizers
    # flat anchor: 18; the other physiological: the anchor's count; behavioral: structured rows,
    # flat the fused physiological count 2 * 18
    assert {name: t.num_tokens for name, t in other.items()} == {
        "ecg": 18, "eda": 18, "resp": 18, "acc": 4, "wrist": 36,
    }  # fmt: skip
    custom = HeLoModule(dmer_metadata(), tokens_per_modality={"face": 12}).net.tokenizers
    assert custom["face"].num_tokens == 12


@pytest.mark.parametrize("metadata", [dmer_metadata(), other_metadata()], ids=["dmer", "other"])
def test_forward_shapes_distributions_and_finite(metadata):
    model = HeLoModule(metadata).eval()
    batch = make_batch(metadata, 5)
    with torch.no_grad():
        preds, aux = model(batch)
    num_emotions = metadata.num_emotions
    assert preds.shape == (5, num_emotions)
    assert torch.isfinite(preds).all() and (preds >= 0).all()
    torch.testing.assert_close(preds.sum(-1), torch.ones(5))
    torch.testing.assert_close(aux["log_probs"].exp(), preds)
    assert aux["label_correlation"].shape == (num_emotions, num_emotions)
    assert aux["label_attention"].shape == (5, num_emotions, num_emotions)
    tokenizers = model.net.tokenizers
    physiological = tokenizers[metadata.physiological[0]].num_tokens * (
        len(metadata.physiological) - 1
    )
    behavioral = sum(tokenizers[name].num_tokens for name in metadata.behavioral)
    assert aux["plan"].shape == (5, physiological, behavioral)
    # evaluation is deterministic and a sample's prediction does not depend on its batch
    with torch.no_grad():
        again, _ = model(batch)
        alone, _ = model({key: value[2:3] for key, value in batch.items()})
    torch.testing.assert_close(again, preds)
    torch.testing.assert_close(alone, preds[2:3], rtol=1e-4, atol=1e-6)


def test_every_parameter_gets_a_gradient():
    metadata = dmer_metadata()
    model = HeLoModule(metadata).train()
    batch = make_batch(metadata, 8)
    preds, aux = model(batch)
    model.compute_losses(batch, preds, aux)["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_losses_are_kl_sum_plus_correlation_mse():
    metadata = dmer_metadata()
    batch = make_batch(metadata, 6)
    model = HeLoModule(metadata).eval()
    with torch.no_grad():
        preds, aux = model(batch)
        losses = model.compute_losses(batch, preds, aux)
    kl_mean = kl_divergence_loss(batch["target"], aux["log_probs"])
    torch.testing.assert_close(losses["kl"], 6 * kl_mean)
    unit = batch["target"] / batch["target"].norm(dim=-1, keepdim=True)
    truth = unit[:, :, None] * unit[:, None, :]
    mse = ((aux["label_correlation"] - truth) ** 2).mean()
    torch.testing.assert_close(losses["corr"], mse)
    torch.testing.assert_close(losses["loss"], losses["kl"] + losses["corr"])

    model.kl_reduction = "mean"
    with torch.no_grad():
        mean_losses = model.compute_losses(batch, preds, aux)
    torch.testing.assert_close(mean_losses["kl"], kl_mean)
    with pytest.raises(ValueError, match="kl_reduction"):
        HeLoModule(metadata, kl_reduction="max")


def test_correlations():
    embeddings = torch.randn(4, 7)
    learned = embedding_correlation(embeddings)
    torch.testing.assert_close(learned, learned.T)
    torch.testing.assert_close(torch.diagonal(learned), torch.ones(4))
    target = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    expected = torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    torch.testing.assert_close(target_correlation(target)[0], expected)


def test_overfits_a_small_fixed_batch():
    torch.manual_seed(0)
    metadata = dmer_metadata()
    batch = make_batch(metadata, 8, seed=1)
    model = HeLoModule(metadata)
    optimizer = model.configure_optimizers()["optimizer"]

    def eval_kl() -> float:
        model.eval()
        with torch.no_grad():
            _, aux = model(batch)
        model.train()
        return kl_divergence_loss(batch["target"], aux["log_probs"]).item()

    before = eval_kl()
    for _ in range(40):
        preds, aux = model(batch)
        loss = model.compute_losses(batch, preds, aux)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_kl()
    assert after < 0.1 * before, (before, after)


# --- heterogeneity mining --------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "cols"), [(36, 36), (20, 36)])
def test_plan_has_uniform_marginals_and_no_gradient(rows, cols):
    generator = torch.Generator().manual_seed(0)
    physiological = torch.randn(4, rows, 16, generator=generator, requires_grad=True)
    behavioral = torch.randn(4, cols, 16, generator=generator, requires_grad=True)
    transported, plan = HeterogeneityMining()(physiological, behavioral)
    assert not plan.requires_grad and plan.grad_fn is None
    assert (plan >= 0).all()
    torch.testing.assert_close(plan.sum(dim=(1, 2)), torch.ones(4))
    # IPOT ends on the column update: columns are exact, rows converge
    torch.testing.assert_close(plan.sum(dim=1), torch.full((4, cols), 1 / cols))
    torch.testing.assert_close(plan.sum(dim=2), torch.full((4, rows), 1 / rows), rtol=0.05, atol=0)
    assert transported.shape == (4, cols, 16)
    # gradients reach the physiological tokens through the product only, never the plan
    grad_p, grad_b = torch.autograd.grad(
        transported.square().sum(), (physiological, behavioral), allow_unused=True
    )
    assert grad_p is not None and grad_p.abs().sum() > 0
    assert grad_b is None


def test_row_marginals_converge_with_more_ipot_steps():
    generator = torch.Generator().manual_seed(1)
    cost = torch.rand(3, 10, 14, generator=generator)
    errors = [
        (ipot(cost, 0.1, steps).sum(2) - 1 / 10).abs().max().item() for steps in (2, 20, 200, 500)
    ]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-4


def test_ipot_finds_a_permutation():
    perm = torch.tensor([3, 0, 4, 1, 2])
    cost = 1.0 - torch.eye(5)[perm]
    plan = ipot(cost.unsqueeze(0), 0.1, 100)[0]
    torch.testing.assert_close(plan, torch.eye(5)[perm] / 5, atol=1e-4, rtol=0)


def test_gromov_wasserstein_matches_isometric_token_sets():
    # The behavioral tokens are a rotated permutation of the physiological ones: same intra-set
    # distances, different space. GW must recover the permutation from the structure alone.
    generator = torch.Generator().manual_seed(0)
    physiological = torch.randn(6, 12, 8, generator=generator)
    perm = torch.randperm(12, generator=generator)
    rotation = torch.linalg.qr(torch.randn(8, 8, generator=generator))[0]
    behavioral = physiological[:, perm] @ rotation
    plan = gromov_wasserstein_plan(
        thresholded_cosine_cost(physiological), thresholded_cosine_cost(behavioral)
    )
    assert torch.equal(plan.argmax(dim=2), torch.argsort(perm).expand(6, -1))
    assert (plan.amax(dim=2) * 12 > 0.9).all()


def test_cost_is_thresholded_per_sample():
    tokens = torch.randn(3, 9, 5)
    cost = thresholded_cosine_cost(tokens, threshold=0.1)
    assert (cost >= 0).all() and cost.shape == (3, 9, 9)
    # the smallest 10 % of each sample's range is cut to 0, so each sample has zeros
    assert ((cost == 0).flatten(1).sum(1) >= 9).all()
    scaled = tokens.clone()
    scaled[1] = torch.randn(9, 5) * 10
    torch.testing.assert_close(thresholded_cosine_cost(scaled)[0], cost[0])


def test_transport_modes():
    physiological = torch.randn(2, 6, 4).expand(2, 6, 4).clone()
    physiological[:, :] = physiological[:, :1]  # all tokens equal
    behavioral = torch.randn(2, 6, 4)
    moved, _ = HeterogeneityMining()(physiological, behavioral)
    torch.testing.assert_close(moved, physiological)  # convex combinations of equal tokens
    plan_moved, plan = HeterogeneityMining(transport="plan")(physiological, behavioral)
    torch.testing.assert_close(plan_moved, plan @ physiological)
    with pytest.raises(ValueError, match="transport"):
        HeterogeneityMining(transport="plan")(physiological, torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="transport='plan'"):
        HeLoModule(other_metadata(), transport="plan", tokens_per_modality={"wrist": 10})
    assert HeLoModule(dmer_metadata(), transport="plan").net.token_mix.in_features == 72


# --- DropKey -----------------------------------------------------------------------------------


def test_dropkey_mask_rate_and_never_a_whole_row():
    torch.manual_seed(0)
    assert 0.48 < dropkey_mask(torch.zeros(200, 4, 18), 0.5).float().mean() < 0.52
    mask = dropkey_mask(torch.zeros(2000, 4, 3), 0.5)
    assert not mask.all(dim=-1).any()
    # with 3 keys and ratio 0.5, 1 row in 8 would be all-dropped: those rows are kept whole, so
    # 1/8 + 1/8 of the rows drop nothing
    assert 0.23 < (~mask).all(dim=-1).float().mean() < 0.27


def test_dropkey_only_in_training():
    torch.manual_seed(0)
    query, keys = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    attention = DropKeyAttention(8, num_heads=2, dropkey=0.5)
    attention.eval()
    first, weights = attention(query, keys)
    torch.testing.assert_close(attention(query, keys)[0], first)
    assert (weights > 0).all()
    attention.train()
    _, dropped = attention(query, keys)
    assert (dropped == 0).any()
    torch.testing.assert_close(dropped.sum(-1), torch.ones(2, 2, 5))


def test_metadata_errors_name_the_field():
    one_branch = dmer_metadata().restricted_to(["eeg", "gsr"])
    with pytest.raises(ValueError, match="behavioral"):
        HeLoModule(one_branch)
    with pytest.raises(ValueError, match="tokens_per_modality"):
        HeLoModule(dmer_metadata(), tokens_per_modality={"audio": 4})
    model = HeLoModule(dmer_metadata())
    batch = make_batch(dmer_metadata(), 2)
    batch["gsr"] = torch.randn(2, 27)
    with pytest.raises(ValueError, match="gsr"):
        model(batch)


@pytest.mark.parametrize("quirks", [False, True])
def test_fit_then_test_through_the_cli(quirks, in_tmp_cwd):
    cli = build_cli(
        [
            "fit",
            "--config",
            str(CONFIG),
            "--data.init_args.num_subjects=4",
            "--data.init_args.rows_per_clip=4",
            "--data.init_args.num_folds=2",
            f"--data.init_args.root={in_tmp_cwd / 'synthetic'}",
            "--data.init_args.batch_size=32",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--model.init_args.reference_quirks={str(quirks).lower()}",
            "--test_after_fit=true",
        ]
    )
    assert cli.model.reference_quirks is quirks
    results = json.loads((Path(cli.trainer.log_dir) / "test_results.json").read_text())
    row = results["results"]["HeLoModule"]
    assert set(row) == {"chebyshev", "clark", "canberra", "kl", "cosine", "intersection"}
    assert all(torch.isfinite(torch.tensor(value)) for value in row.values())
    best = cli.trainer.checkpoint_callback.best_model_path
    torch.load(best, weights_only=True)
    restored = HeLoModule.load_from_checkpoint(best).eval()
    assert restored.reference_quirks is quirks and restored.kl_reduction == "sum"
    if not quirks:  # with the quirks, evaluation is random
        # one epoch: the best checkpoint is the trained model
        batch = next(iter(cli.datamodule.test_dataloader()))
        with torch.no_grad():
            torch.testing.assert_close(restored(batch)[0], cli.model.eval()(batch)[0])
