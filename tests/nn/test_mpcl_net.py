from __future__ import annotations

import time

import pytest
import torch

from mpcl.losses import kl_divergence_loss
from mpcl.nn import (
    ConcatFusion,
    FlatHead,
    HierarchicalCompressionHead,
    MPCLNet,
    MultiScaleAssociativeFusion,
    NoPrototypes,
    NoRetrieval,
    PrototypeBank,
    TokenNorm,
)

SMALL = {"hidden_dim": 16, "prototypes_per_emotion": 2, "dropout": 0.0}

# name -> (constructor overrides, module types that must be gone, parameter-name fragments that
# must be gone, aux keys that must be gone)
ABLATIONS = {
    "concat": (
        {"fusion": "concat"},
        [MultiScaleAssociativeFusion],
        ["fusion.physiological.hopfield", "fusion.physiological.slots", "fusion.behavioral.gate"],
        ["scale_gate_physiological", "scale_gate_behavioral"],
    ),
    "single_scale": (
        {"scales": [1]},
        [],
        ["fusion.physiological.gate", "fusion.behavioral.gate"],
        ["scale_gate_physiological", "scale_gate_behavioral"],
    ),
    "no_prototypes": (
        {"prototypes": "none"},
        [PrototypeBank],
        ["prototypes.physiological.readout", "prototypes.behavioral.readout"],
        ["prd", "assignments_physiological", "assignments_behavioral"],
    ),
    "no_prd": ({"prd": False}, [], [], ["prd"]),
    "no_retrieval": (
        {"retrieval": "none"},
        [],
        ["retrieval."],
        ["co", "cooccurrence"],
    ),
    "no_valence_prior": ({"valence_prior": False}, [], ["retrieval.valence_strength"], []),
    "flat_head": (
        {"head": "flat"},
        [HierarchicalCompressionHead],
        ["head.score", "head.pool_attention", "head.global_logits"],
        ["compression_attention"],
    ),
    "physiological_only": (
        {"modalities": ["eeg", "gsr", "ppg"]},
        [],
        ["tokenizers.tokenizers.face", "fusion.behavioral", "prototypes.behavioral", "branch_gate"],
        ["prd", "branch_gate", "assignments_behavioral", "scale_gate_behavioral"],
    ),
    "behavioral_only": (
        {"modalities": ["face"]},
        [],
        ["tokenizers.tokenizers.eeg", "fusion.physiological", "prototypes.physiological"],
        ["prd", "branch_gate", "assignments_physiological", "scale_gate_physiological"],
    ),
}


def total_loss(target, aux):
    loss = kl_divergence_loss(target, aux["log_probs"])
    for name in ("prd", "co"):
        if name in aux:
            loss = loss + aux[name]
    return loss


def param_names(net):
    return [name for name, _ in net.named_parameters()]


MODALITY_SETS = {
    "dmer": ("dmer", {}),
    "dmer_grouped": ("dmer_grouped", {}),
    "wesad": ("wesad", {}),
    "single_modality_per_branch": ("single", {}),
    "single_token_branches": ("single", {"tokens_per_modality": {"eeg": 1, "face": 1}}),
    "physiological_only": ("dmer", {"modalities": ["eeg", "gsr", "ppg"]}),
    "behavioral_only": ("dmer", {"modalities": ["face"]}),
    "wesad_behavioral_only": ("wesad", {"modalities": ["chest_acc", "wrist_acc"]}),
}


@pytest.mark.parametrize("case", list(MODALITY_SETS))
def test_predicts_distributions(case, request, make_batch, make_target):
    fixture, overrides = MODALITY_SETS[case]
    meta = request.getfixturevalue(fixture)
    net = MPCLNet(meta, hidden_dim=16, prototypes_per_emotion=3, **overrides)
    batch, target = make_batch(meta, 6), make_target(6, meta.num_emotions)
    for mode in ("train", "eval"):
        getattr(net, mode)()
        preds, aux = net(batch, target)
        assert preds.shape == (6, meta.num_emotions)
        assert torch.isfinite(preds).all() and (preds >= 0).all()
        torch.testing.assert_close(preds.sum(-1), torch.ones(6))
        torch.testing.assert_close(aux["log_probs"].exp(), preds)
        assert all(torch.isfinite(v.float()).all() for v in aux.values())
        a = aux["cooccurrence"]
        assert a.shape == (6, meta.num_emotions, meta.num_emotions)
        torch.testing.assert_close(a.sum(-1), torch.ones(6, meta.num_emotions))
        assert "co" in aux


def test_single_token_branches_skip_memory(single):
    net = MPCLNet(single, hidden_dim=8, tokens_per_modality={"eeg": 1, "face": 1})
    assert all(isinstance(f, TokenNorm) for f in net.fusion.values())
    multi = MPCLNet(single, hidden_dim=8)
    assert all(isinstance(f, MultiScaleAssociativeFusion) for f in multi.fusion.values())


def test_full_model_components_and_aux(dmer_grouped, make_batch, make_target):
    net = MPCLNet(dmer_grouped, **SMALL).train()
    kinds = {type(m) for m in net.modules()}
    assert {MultiScaleAssociativeFusion, PrototypeBank, HierarchicalCompressionHead} <= kinds
    assert not {ConcatFusion, NoPrototypes, NoRetrieval, FlatHead} & kinds
    batch, target = make_batch(dmer_grouped, 5), make_target(5, 10)
    _, aux = net(batch, target)
    expected = {
        "log_probs", "cooccurrence", "prd", "co", "branch_gate", "compression_attention",
        "assignments_physiological", "assignments_behavioral",
        "scale_gate_physiological", "scale_gate_behavioral",
        "embedding_physiological", "embedding_behavioral",
        "relations_physiological", "relations_behavioral",
    }  # fmt: skip
    assert set(aux) == expected
    assert aux["scale_gate_physiological"].shape == (5, 18, 3)
    assert aux["assignments_physiological"].shape == (5, 10)
    assert aux["prd"] > 0 and aux["co"] > 0
    # Without a target: no loss terms and no memory update, even in training mode.
    before = {k: v.clone() for k, v in net.named_buffers() if k.endswith("bank")}
    _, aux = net(batch)
    assert "prd" not in aux and "co" not in aux
    for key, value in net.named_buffers():
        if key.endswith("bank"):
            torch.testing.assert_close(value, before[key])


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_removes_its_component(name, dmer_grouped, make_batch, make_target):
    overrides, gone_types, gone_names, gone_aux = ABLATIONS[name]
    full = MPCLNet(dmer_grouped, **SMALL)
    ablated = MPCLNet(dmer_grouped, **{**SMALL, **overrides})
    full_names, ablated_names = param_names(full), param_names(ablated)
    for fragment in gone_names:
        assert any(fragment in n for n in full_names), fragment  # the check is not vacuous
        assert not any(fragment in n for n in ablated_names), fragment
    for kind in gone_types:
        assert not any(isinstance(m, kind) for m in ablated.modules())
    batch, target = make_batch(dmer_grouped, 4), make_target(4, 10)
    _, full_aux = full.train()(batch, target)
    _, aux = ablated.train()(batch, target)
    for key in gone_aux:
        assert key in full_aux and key not in aux, key


def test_ablation_specifics(dmer_grouped):
    single_scale = MPCLNet(dmer_grouped, **SMALL, scales=[1])
    assert single_scale.fusion["physiological"].hopfield.log_beta.shape == (1,)
    assert single_scale.fusion["physiological"].slots.shape[0] == 1
    learned = MPCLNet(dmer_grouped, **SMALL, prototype_update="learned")
    assert "prototypes.physiological.bank" in param_names(learned)
    assert "prototypes.physiological.bank" not in dict(learned.named_buffers())
    ema = MPCLNet(dmer_grouped, **SMALL)
    assert "prototypes.physiological.bank" in dict(ema.named_buffers())
    assert "prototypes.physiological.bank" not in param_names(ema)
    no_prototypes = MPCLNet(dmer_grouped, **SMALL, prototypes="none")
    assert not any(k.endswith("bank") for k, _ in no_prototypes.named_buffers())
    assert isinstance(MPCLNet(dmer_grouped, **SMALL, retrieval="none").retrieval, NoRetrieval)


VARIANTS = {
    "prototype_update_learned": {"prototype_update": "learned"},
    "fusion_anchor_all": {"fusion_anchor": "all"},
    "ema_weighting_centered": {"ema_weighting": "centered"},
    "token_ffn": {"token_ffn": True},
    "input_dropout": {"input_dropout": 0.2},
    "branch_readout": {"branch_readout": True},
}


@pytest.mark.parametrize("name", ["full", *ABLATIONS, *VARIANTS, "wesad"])
def test_every_parameter_gets_gradient(name, request, dmer_grouped, make_batch, make_target):
    overrides = VARIANTS.get(name, {})
    overrides = ABLATIONS[name][0] if name in ABLATIONS else overrides
    meta = request.getfixturevalue("wesad") if name == "wesad" else dmer_grouped
    torch.manual_seed(0)
    net = MPCLNet(meta, **{**SMALL, **overrides}).train()
    target = make_target(8, meta.num_emotions)
    _, aux = net(make_batch(meta, 8), target)
    total_loss(target, aux).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_eval_is_sample_independent_and_state_dict_round_trips(dmer_grouped, make_batch):
    torch.manual_seed(0)
    net = MPCLNet(dmer_grouped, **SMALL)
    net.train()(make_batch(dmer_grouped, 8, seed=3), torch.full((8, 10), 0.1))  # move the banks
    net.eval()
    batch = make_batch(dmer_grouped, 6)
    preds, _ = net(batch)
    part, _ = net({k: v[:2] for k, v in batch.items()})
    torch.testing.assert_close(part, preds[:2])
    torch.manual_seed(1)
    clone = MPCLNet(dmer_grouped, **SMALL)
    clone.load_state_dict(net.state_dict())
    torch.testing.assert_close(clone.eval()(batch)[0], preds)


def test_constructor_and_forward_validation(dmer, make_batch):
    with pytest.raises(ValueError, match="fusion must be one of"):
        MPCLNet(dmer, fusion="attention")
    with pytest.raises(ValueError, match="prototype_update"):
        MPCLNet(dmer, prototype_update="sgd")
    with pytest.raises(ValueError, match=r"modalities \['emg'\]"):
        MPCLNet(dmer, modalities=["eeg", "emg"])
    with pytest.raises(ValueError, match="keeps no modality"):
        MPCLNet(dmer, modalities=[])
    net = MPCLNet(dmer, hidden_dim=8)
    with pytest.raises(ValueError, match=r"target must be \[B, C=10\]"):
        net(make_batch(dmer, 2), torch.ones(2, 4) / 4)
    # Layout entries of modalities dropped by `modalities` are accepted (one YAML per data set).
    MPCLNet(dmer, hidden_dim=8, token_groups={"face": 3}, modalities=["eeg"])
    assert MPCLNet(dmer.to_dict(), hidden_dim=8).metadata == dmer


def test_overfits_a_small_batch(dmer_grouped, make_batch, make_target):
    torch.manual_seed(0)
    net = MPCLNet(dmer_grouped, hidden_dim=32, prototypes_per_emotion=2, dropout=0.0).train()
    batch, target = make_batch(dmer_grouped, 16), make_target(16, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = time.perf_counter()
    for _ in range(200):
        _, aux = net(batch, target)
        loss = kl_divergence_loss(target, aux["log_probs"]) + 0.1 * (aux["prd"] + aux["co"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    _, aux = net.eval()(batch)
    kl = kl_divergence_loss(target, aux["log_probs"]).item()
    assert kl < 0.01, f"KL {kl:.4f} after 200 steps ({elapsed:.1f} s)"


def test_analysis_outputs_leave_the_forward_results_unchanged(
    dmer_grouped, make_batch, make_target, monkeypatch
):
    """The report's aux entries are detached extras: predictions and gradients do not move."""
    import mpcl.nn.mpcl_net as mpcl_net_module

    torch.manual_seed(0)
    net = MPCLNet(dmer_grouped, **SMALL).eval()
    batch, target = make_batch(dmer_grouped, 5), make_target(5, 10)
    preds, aux = net(batch, target)
    for branch in ("physiological", "behavioral"):
        embedding, relations = aux[f"embedding_{branch}"], aux[f"relations_{branch}"]
        assert embedding.shape == (5, SMALL["hidden_dim"]) and not embedding.requires_grad
        assert relations.shape == (5, 10, 9) and not relations.requires_grad
        torch.testing.assert_close(relations.sum(-1), torch.ones(5, 10))
    loss = total_loss(target, aux)
    grads = torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad])

    # The same network with the relation computation replaced by a constant.
    monkeypatch.setattr(
        mpcl_net_module, "emotion_relations", lambda z, tau: torch.zeros(z.shape[0], 10, 9)
    )
    preds_without, aux_without = net(batch, target)
    torch.testing.assert_close(preds_without, preds, rtol=0, atol=0)
    loss_without = total_loss(target, aux_without)
    grads_without = torch.autograd.grad(
        loss_without, [p for p in net.parameters() if p.requires_grad]
    )
    for a, b in zip(grads, grads_without, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_analysis_state_holds_banks_and_scales(dmer_grouped):
    net = MPCLNet(dmer_grouped, **SMALL)
    state = net.analysis_state()
    bank = net.prototypes["physiological"].bank
    torch.testing.assert_close(state["bank_physiological"], bank)
    assert state["bank_physiological"].data_ptr() != bank.data_ptr()  # a copy
    assert state["scales_physiological"].tolist() == list(net.fusion["physiological"].scales)
