"""MPCLNet: the MPCL network as a plain ``nn.Module``, every stage switchable for ablations.

Data flow (docs/model.md, section 'Notation and overview'):

    batch -> tokenizers -> per-branch fusion (MSAM | concat) -> per-branch prototypes (bank | none)
          -> branch gate -> co-occurrence retrieval (hopfield | none) -> head (hierarchical | flat)

The network returns the predicted distribution and the auxiliary terms; the LightningModule that
wraps it combines ``KL(d || d_hat) + lambda_prd * aux["prd"] + lambda_co * aux["co"]``.

See docs/model.md, sections 'Constructor arguments' and 'Ablation overlays'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import presence
from mpcl.nn.compression import FlatHead, HierarchicalCompressionHead
from mpcl.nn.distillation import (
    emotion_relations,
    prototype_relation_distillation,
    sample_prototype_relations,
)
from mpcl.nn.fusion import ConcatFusion, FusionAnchor, MultiScaleAssociativeFusion, TokenNorm
from mpcl.nn.masking import fill_missing
from mpcl.nn.prototypes import EMAWeighting, NoPrototypes, PrototypeBank, PrototypeOutput
from mpcl.nn.retrieval import BranchGate, CooccurrenceRetrieval, NoRetrieval, cooccurrence_loss
from mpcl.nn.tokenizers import ModalityTokenizers

FusionKind = Literal["msam", "concat"]
PrototypeKind = Literal["bank", "none"]
PrototypeUpdate = Literal["ema", "learned"]
RetrievalKind = Literal["hopfield", "none"]
HeadKind = Literal["hierarchical", "flat"]

PHYSIOLOGICAL = "physiological"
BEHAVIORAL = "behavioral"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"MPCLNet: {name} must be one of {choices}, got {value!r}")


class MPCLNet(nn.Module):
    """Memory-guided Prototypical Co-occurrence Learning network.

    Args:
        metadata: Data set description (emotions, valence groups, modality shapes and branches),
            or its ``to_dict`` form.
        hidden_dim: Token and representation size D.
        prototypes_per_emotion: Prototypes K per emotion in each bank.
        scales: Pooling windows of the multi-scale associative memory; ``[1]`` is the
            ``single_scale`` ablation.
        memory_slots: Learned memory slots per scale in MSAM.
        momentum: EMA momentum of the prototype memory update.
        ema_weighting: Weights of the memory update: ``"target"`` or ``"centered"`` (see
            :class:`~mpcl.nn.prototypes.PrototypeBank`).
        tau: Temperature of prototype relation distillation.
        dropout: Dropout on tokens, retrieved states, feed-forward blocks and the head.
        tokens_per_modality: Token count of a flat layout per modality (see
            :class:`~mpcl.nn.tokenizers.ModalityTokenizers`).
        token_groups: Group count of a grouped layout per modality (e.g. ``{"face": 3}``).
        token_ffn: A residual feed-forward block after every tokenizer (see
            :class:`~mpcl.nn.tokenizers.ModalityTokenizers`).
        input_dropout: Dropout on the raw input features (see
            :class:`~mpcl.nn.tokenizers.ModalityTokenizers`).
        fusion: ``"msam"`` or ``"concat"`` (no memory).
        fusion_anchor: MSAM queries: ``"first"`` modality of each branch, or ``"all"`` tokens.
        prototypes: ``"bank"`` (emotion-specific prototype banks) or ``"none"``.
        prototype_update: ``"ema"`` (memory update) or ``"learned"`` (gradient only).
        prd: Prototype relation distillation; only possible with two branches and banks.
        retrieval: ``"hopfield"`` (co-occurrence retrieval) or ``"none"``.
        valence_prior: Valence bias on the retrieval logits (needs 2+ valence groups).
        valence_prior_init: Initial strength ``b`` of the valence bias.
        head: ``"hierarchical"`` (semantic compression) or ``"flat"``.
        branch_readout: Add a linear readout of the branches' pooled embeddings to the head's
            logits, ``logits += W [h_phys; h_beh]``: a path from the fused tokens to the output
            that does not pass the prototype attention.
        modalities: Keep only these modalities (e.g. the physiological ones for a
            physiological-only ablation); ``None`` keeps all.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | Mapping[str, Any],
        hidden_dim: int = 128,
        prototypes_per_emotion: int = 4,
        scales: Sequence[int] = (1, 2, 4),
        memory_slots: int = 4,
        momentum: float = 0.99,
        ema_weighting: EMAWeighting = "target",
        tau: float = 0.1,
        dropout: float = 0.1,
        tokens_per_modality: Mapping[str, int] | None = None,
        token_groups: Mapping[str, int] | None = None,
        token_ffn: bool = False,
        input_dropout: float = 0.0,
        fusion: FusionKind = "msam",
        fusion_anchor: FusionAnchor = "first",
        prototypes: PrototypeKind = "bank",
        prototype_update: PrototypeUpdate = "ema",
        prd: bool = True,
        retrieval: RetrievalKind = "hopfield",
        valence_prior: bool = True,
        valence_prior_init: float = 1.0,
        head: HeadKind = "hierarchical",
        branch_readout: bool = False,
        modalities: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        _check_choice("fusion", fusion, ("msam", "concat"))
        _check_choice("prototypes", prototypes, ("bank", "none"))
        _check_choice("prototype_update", prototype_update, ("ema", "learned"))
        _check_choice("retrieval", retrieval, ("hopfield", "none"))
        _check_choice("head", head, ("hierarchical", "flat"))
        if hidden_dim < 1:
            raise ValueError(f"MPCLNet: hidden_dim must be positive, got {hidden_dim}")
        for option, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"MPCLNet: {option} must be in [0, 1), got {rate}")
        if tau <= 0:
            raise ValueError(f"MPCLNet: tau must be positive, got {tau}")
        full = DatasetMetadata.coerce(metadata)
        if full.num_emotions < 2:
            raise ValueError(
                f"MPCLNet: DatasetMetadata.emotion_names has {full.num_emotions} emotion; a "
                "distribution needs at least 2"
            )
        self.metadata = full if modalities is None else self._restrict(full, modalities)
        self.branches = {
            name: mods
            for name, mods in (
                (PHYSIOLOGICAL, self.metadata.physiological),
                (BEHAVIORAL, self.metadata.behavioral),
            )
            if mods
        }
        dim, num_emotions = hidden_dim, self.metadata.num_emotions
        self.tau = tau

        # Layout entries of modalities dropped by `modalities` are accepted, so that one YAML
        # serves every ablation.
        self.tokenizers = ModalityTokenizers(
            full,
            dim,
            tokens_per_modality,
            token_groups,
            dropout,
            self.metadata.modalities,
            token_ffn,
            input_dropout,
        )

        fusions: dict[str, nn.Module] = {}
        banks: dict[str, nn.Module] = {}
        for name, mods in self.branches.items():
            counts = [self.tokenizers.num_tokens(m) for m in mods]
            if fusion == "concat":
                fusions[name] = ConcatFusion(dim, dropout)
            elif sum(counts) == 1:
                fusions[name] = TokenNorm(dim)
            else:
                fusions[name] = MultiScaleAssociativeFusion(
                    counts, dim, scales, memory_slots, dropout, fusion_anchor
                )
            banks[name] = (
                PrototypeBank(
                    num_emotions,
                    prototypes_per_emotion,
                    dim,
                    prototype_update,
                    momentum,
                    ema_weighting,
                )
                if prototypes == "bank"
                else NoPrototypes(num_emotions, dim)
            )
        self.fusion = nn.ModuleDict(fusions)
        self.prototypes = nn.ModuleDict(banks)
        self.branch_gate = BranchGate(dim) if len(self.branches) == 2 else None
        self.prd_enabled = prd and prototypes == "bank" and len(self.branches) == 2
        self.retrieval = (
            CooccurrenceRetrieval(
                self.metadata.valence_groups,
                dim,
                len(self.branches),
                valence_prior,
                valence_prior_init,
                dropout,
            )
            if retrieval == "hopfield"
            else NoRetrieval()
        )
        head_cls = HierarchicalCompressionHead if head == "hierarchical" else FlatHead
        self.head = head_cls(num_emotions, dim, dim, dropout)
        self.branch_readout = (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(len(self.branches) * dim, num_emotions))
            if branch_readout
            else None
        )

    def _token_mask(
        self, name: str, mods: Sequence[str], present: Sequence[Tensor | None], fused: Tensor
    ) -> Tensor | None:
        """Which fused tokens of branch ``name`` stand for present data ``[B, T]``, or ``None``.

        MSAM with the ``first`` anchor outputs the anchor's tokens after they recalled the other
        modalities: they carry data whenever any modality of the branch is present. The other
        fusions keep one token per input token, present when its modality is.
        """
        if all(p is None for p in present):
            return None
        rows, device = fused.shape[0], fused.device
        columns = [
            torch.ones(rows, dtype=torch.bool, device=device) if p is None else p.to(device)
            for p in present
        ]
        fusion = self.fusion[name]
        if isinstance(fusion, MultiScaleAssociativeFusion) and fusion.anchor == "first":
            anchored = torch.stack(columns, dim=1).any(dim=1, keepdim=True)
            return anchored.expand(rows, fused.shape[1])
        counts = [self.tokenizers.num_tokens(m) for m in mods]
        return torch.cat(
            [c.unsqueeze(1).expand(rows, n) for c, n in zip(columns, counts, strict=True)], dim=1
        )

    def _impute_missing_branches(
        self, outputs: dict[str, PrototypeOutput], present: dict[str, Tensor | None]
    ) -> dict[str, PrototypeOutput]:
        r"""Give a window's missing branch the representation its present branch predicts.

        PRD trains prototype ``(c, k)`` of one bank to correspond to ``(c, k)`` of the other (the
        sample-to-prototype relations of both branches are distilled into each other). A window
        whose branch ``b`` is missing therefore gets, from the present branch ``o``,

        .. math::
            r_o = \mathrm{softmax}(\cos(h_o, \Pi_o) / \tau), \quad
            \hat h_b = r_o^\top \Pi_b, \quad
            \hat Z_b = \mathrm{read}_b(\hat h_b)

        the missing branch's prototypes weighted by the present branch's relations (a pooled
        embedding in the missing branch's space) and read by the missing bank like a one-token
        branch. Without banks (``prototypes: none``) the present branch's representation is
        copied. Windows missing both branches keep their zero-fill representation.
        """
        if len(outputs) != 2 or all(p is None for p in present.values()):
            return outputs
        rows = next(iter(outputs.values())).pooled
        ones = torch.ones(rows.shape[0], dtype=torch.bool, device=rows.device)
        have = {name: ones if p is None else p for name, p in present.items()}
        imputed = dict(outputs)
        for name, other in ((PHYSIOLOGICAL, BEHAVIORAL), (BEHAVIORAL, PHYSIOLOGICAL)):
            replace = ~have[name] & have[other]
            if not bool(replace.any()):
                continue
            source, out = outputs[other], outputs[name]
            bank = self.prototypes[name]
            if isinstance(bank, PrototypeBank):
                relations = sample_prototype_relations(source.pooled, source.bank, self.tau).exp()
                pooled = relations @ out.bank.flatten(0, 1)
                emotions = bank.read(pooled.unsqueeze(1), out.bank)
            else:
                pooled, emotions = source.pooled, source.emotions
            where = replace.view(-1, 1)
            imputed[name] = PrototypeOutput(
                torch.where(where.unsqueeze(-1), emotions, out.emotions),
                torch.where(where, pooled, out.pooled),
                out.memory,
                out.bank,
                out.assignments,
            )
        return imputed

    def _distillation(
        self, outputs: dict[str, PrototypeOutput], present: dict[str, Tensor | None]
    ) -> Tensor:
        """PRD over the windows in which both branches are present (zero when there are none)."""
        phys, behav = outputs[PHYSIOLOGICAL], outputs[BEHAVIORAL]
        both = None
        for p in present.values():
            if p is not None:
                both = p if both is None else both & p
        parts = [phys.pooled, phys.emotions, behav.pooled, behav.emotions]
        if both is not None:
            if not bool(both.any()):
                return sum(part.sum() for part in parts) * 0.0
            parts = [part[both] for part in parts]
        return prototype_relation_distillation(
            parts[0], phys.bank, parts[1], parts[2], behav.bank, parts[3], self.tau
        )

    @staticmethod
    def _restrict(metadata: DatasetMetadata, modalities: Sequence[str]) -> DatasetMetadata:
        unknown = sorted(set(modalities) - set(metadata.modalities))
        if unknown:
            raise ValueError(
                f"MPCLNet: modalities {unknown} are not in DatasetMetadata.physiological / "
                f"behavioral (known: {list(metadata.modalities)})"
            )
        restricted = metadata.restricted_to(modalities)
        if not restricted.modalities:
            raise ValueError("MPCLNet: modalities keeps no modality; expected at least one")
        return restricted

    @property
    def num_emotions(self) -> int:
        """The number C of emotion categories."""
        return self.metadata.num_emotions

    def forward(
        self, batch: Mapping[str, Tensor], target: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Predict emotion distributions.

        Args:
            batch: Modality tensors ``[B, *shape]`` keyed as in the metadata (other keys ignored).
            target: Target distributions ``[B, C]``. With a target, the auxiliary losses are
                computed, and in training mode the prototype memory is updated.

        Returns:
            The predicted distributions ``[B, C]`` and ``aux``: ``log_probs`` (``[B, C]``, for a
            stable KL), ``cooccurrence`` (``A`` ``[B, C, C]``), ``assignments_<branch>``
            (``[B, C]``), ``scale_gate_<branch>`` (``[B, T, S]``), ``branch_gate``
            (``[B, C, D]``), ``compression_attention`` (``[B, C]``), and with a target the
            unweighted loss terms ``prd`` and ``co``. Entries of disabled components are absent.
            For analysis, detached: ``embedding_<branch>`` (the pooled branch embedding
            ``[B, D]``) and ``relations_<branch>`` (the emotion-to-emotion relations ``R`` that
            distillation aligns, ``[B, C, C-1]``, row ``c`` over the other emotions).
        """
        if target is not None and target.shape[-1] != self.num_emotions:
            raise ValueError(
                f"MPCLNet.forward: target must be [B, C={self.num_emotions}] (one column per "
                f"DatasetMetadata.emotion_names), got {list(target.shape)}"
            )
        batch = fill_missing(batch, self.metadata.modalities)
        tokens = self.tokenizers(batch)
        aux: dict[str, Tensor] = {}
        outputs: dict[str, PrototypeOutput] = {}
        branch_present: dict[str, Tensor | None] = {}
        for name, mods in self.branches.items():
            present = [presence(batch, m) for m in mods]
            fused, scale_gate = self.fusion[name]([tokens[m] for m in mods], present)
            if scale_gate is not None:
                aux[f"scale_gate_{name}"] = scale_gate
            token_mask = self._token_mask(name, mods, present, fused)
            branch_present[name] = None if token_mask is None else token_mask.any(dim=1)
            outputs[name] = self.prototypes[name](fused, target, token_mask)
            if outputs[name].assignments is not None:
                aux[f"assignments_{name}"] = outputs[name].assignments
        outputs = self._impute_missing_branches(outputs, branch_present)
        for name, output in outputs.items():
            # For analysis only (report figures): detached, so the objective is unchanged. A
            # missing branch shows its imputed representation.
            aux[f"embedding_{name}"] = output.pooled.detach()
            with torch.no_grad():
                aux[f"relations_{name}"] = emotion_relations(output.emotions, self.tau).exp()

        if self.branch_gate is not None:
            queries, aux["branch_gate"] = self.branch_gate(
                outputs[PHYSIOLOGICAL].emotions, outputs[BEHAVIORAL].emotions
            )
        else:
            queries = next(iter(outputs.values())).emotions
        retrieved = self.retrieval(
            queries, [out.memory for out in outputs.values()], with_log=target is not None
        )
        logits, attention = self.head(retrieved.emotions)
        if self.branch_readout is not None:
            pooled = torch.cat([out.pooled for out in outputs.values()], dim=-1)
            logits = logits + self.branch_readout(pooled)
        aux["log_probs"] = logits.log_softmax(dim=-1)
        if attention is not None:
            aux["compression_attention"] = attention
        if retrieved.cooccurrence is not None:
            aux["cooccurrence"] = retrieved.cooccurrence

        if target is not None:
            if self.prd_enabled:
                aux["prd"] = self._distillation(outputs, branch_present)
            if retrieved.log_cooccurrence is not None:
                aux["co"] = cooccurrence_loss(retrieved.log_cooccurrence, target)
        return logits.softmax(dim=-1), aux

    def analysis_state(self) -> dict[str, Tensor]:
        """What the report needs of the network beyond ``aux``: prototype banks and MSAM scales.

        Returns:
            ``bank_<branch>`` (``[C, K, D]``, a copy) for every branch with a prototype bank, and
            ``scales_<branch>`` (the pooling windows of its multi-scale memory) where it has one.
        """
        state: dict[str, Tensor] = {}
        for name in self.branches:
            bank = getattr(self.prototypes[name], "bank", None)
            if isinstance(bank, Tensor):
                state[f"bank_{name}"] = bank.detach().clone()
            scales = getattr(self.fusion[name], "scales", None)
            if scales is not None:
                state[f"scales_{name}"] = torch.tensor(scales)
        return state
