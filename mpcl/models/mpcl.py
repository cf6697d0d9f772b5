"""MPCLModule: the MPCL network trained with its full objective.

Every component of :class:`~mpcl.nn.MPCLNet` is chosen by an argument of this module, so a YAML
(one per ablation in ``experiments/ablations/``) swaps any of them; the sizes come from the
datamodule's metadata, linked in by the CLI.

See docs/model.md, sections 'Objective', 'Constructor arguments' and
'Ablation overlays'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from mpcl.models.base import Batch, EmotionDistributionModule, adam, exponential_decay
from mpcl.nn.fusion import FusionAnchor
from mpcl.nn.mpcl_net import (
    FusionKind,
    HeadKind,
    MPCLNet,
    PrototypeKind,
    PrototypeUpdate,
    RetrievalKind,
)
from mpcl.nn.prototypes import EMAWeighting


class MPCLModule(EmotionDistributionModule):
    r"""Memory-guided Prototypical Co-occurrence Learning.

    Objective:

    .. math::
        \mathcal{L} = \mathrm{KL}(d \,\|\, \hat d)
            + \lambda_{prd} \mathcal{L}_{PRD} + \lambda_{co} \mathrm{KL}(T \,\|\, A)

    with :math:`\mathcal{L}_{PRD}` the prototype relation distillation between the two branches
    and :math:`A` the retrieved emotion co-occurrence matrix, :math:`T` the row-normalised outer
    product of the target. Terms of switched-off components are absent.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        hidden_dim: Token and representation size D.
        prototypes_per_emotion: Prototypes K per emotion in each bank.
        scales: Pooling windows of the multi-scale associative memory (``[1]``: single scale).
        memory_slots: Learned memory slots per scale.
        momentum: EMA momentum of the prototype memory update.
        ema_weighting: ``target`` or ``centered`` weights of the memory update.
        tau: Temperature of prototype relation distillation.
        dropout: Dropout throughout the network.
        tokens_per_modality: Token count of flat feature vectors, per modality.
        token_groups: Semantic groups of flat layouts, per modality (e.g. ``{"face": 3}``).
        token_ffn: A residual feed-forward block after every tokenizer.
        input_dropout: Dropout on the raw input features, before the tokenizers.
        fusion: ``msam`` (associative memory) or ``concat``.
        fusion_anchor: MSAM queries: the ``first`` modality of each branch, or ``all`` tokens.
        prototypes: ``bank`` (emotion-specific prototype memory) or ``none``.
        prototype_update: ``ema`` (memory update) or ``learned`` (plain parameters).
        prd: Prototype relation distillation on or off.
        retrieval: ``hopfield`` (co-occurrence retrieval) or ``none``.
        valence_prior: Valence bias on the retrieval logits on or off.
        valence_prior_init: Initial strength of the valence bias.
        head: ``hierarchical`` (semantic compression) or ``flat``.
        branch_readout: Add a linear readout of the pooled branch embeddings to the logits.
        modalities: Keep only these modalities.
        branches: Keep only the modalities of these branches (``physiological`` /
            ``behavioral``): the data-set-independent way to ask for a one-branch ablation.
        lambda_prd: Weight of the distillation term.
        lambda_co: Weight of the co-occurrence term.
        optimizer: Callable building the optimizer.
        scheduler: Callable building an epoch-wise scheduler, or ``None``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        hidden_dim: int = 128,
        prototypes_per_emotion: int = 4,
        scales: list[int] | None = None,
        memory_slots: int = 4,
        momentum: float = 0.99,
        ema_weighting: EMAWeighting = "target",
        tau: float = 0.1,
        dropout: float = 0.1,
        tokens_per_modality: dict[str, int] | None = None,
        token_groups: dict[str, int] | None = None,
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
        modalities: list[str] | None = None,
        branches: list[Literal["physiological", "behavioral"]] | None = None,
        lambda_prd: float = 0.1,
        lambda_co: float = 0.1,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__(metadata, optimizer=optimizer, scheduler=scheduler)
        self.lambda_prd = lambda_prd
        if branches is not None:
            if modalities is not None:
                raise ValueError("MPCLModule: give either modalities or branches, not both")
            modalities = [m for b in branches for m in getattr(self.metadata, b)]
        self.lambda_co = lambda_co
        self.net = MPCLNet(
            self.metadata,
            hidden_dim=hidden_dim,
            prototypes_per_emotion=prototypes_per_emotion,
            scales=tuple(scales) if scales is not None else (1, 2, 4),
            memory_slots=memory_slots,
            momentum=momentum,
            ema_weighting=ema_weighting,
            tau=tau,
            dropout=dropout,
            tokens_per_modality=tokens_per_modality,
            token_groups=token_groups,
            token_ffn=token_ffn,
            input_dropout=input_dropout,
            fusion=fusion,
            fusion_anchor=fusion_anchor,
            prototypes=prototypes,
            prototype_update=prototype_update,
            prd=prd,
            retrieval=retrieval,
            valence_prior=valence_prior,
            valence_prior_init=valence_prior_init,
            head=head,
            branch_readout=branch_readout,
            modalities=modalities,
        )

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted distributions and ``aux``.

        The target, when the batch has one, is used for the auxiliary losses and, in training
        only, for the prototype memory update; predictions never depend on it.
        """
        return self.net(batch, batch.get("target"))

    def auxiliary_losses(
        self, batch: Batch, preds: Tensor, aux: Mapping[str, Tensor]
    ) -> dict[str, tuple[float, Tensor]]:
        """``prd`` and ``co`` with their weights, where the components are on."""
        terms = {}
        if "prd" in aux:
            terms["prd"] = (self.lambda_prd, aux["prd"])
        if "co" in aux:
            terms["co"] = (self.lambda_co, aux["co"])
        return terms

    def analysis_state(self) -> dict[str, Tensor]:
        """Prototype banks and MSAM scales of the network (see :meth:`MPCLNet.analysis_state`)."""
        return self.net.analysis_state()
