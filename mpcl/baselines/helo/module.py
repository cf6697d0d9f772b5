"""HeLoModule: the HeLo baseline trained in the project's pipeline with its published objective."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from datamodules.metadata import DatasetMetadata
from mpcl.baselines.helo.labels import correlation_alignment_loss
from mpcl.baselines.helo.net import HeLoNet
from mpcl.baselines.helo.reference import HeLoReferenceNet
from mpcl.baselines.helo.transport import TransportKind
from mpcl.models.base import Batch, EmotionDistributionModule, adam, exponential_decay
from mpcl.nn.masking import fill_missing


class HeLoModule(EmotionDistributionModule):
    r"""HeLo (Zheng et al., ACM MM 2025): heterogeneous multi-modal fusion with label correlation.

    Objective, as published:

    .. math::
        \mathcal{L} = \sum_{b=1}^{B} \mathrm{KL}(d_b \,\|\, \hat d_b)
            + \lambda_{corr} \, \mathrm{MSE}(A, \hat d \hat d^\top)

    (KL summed over the batch, ``kl_reduction="sum"``; ``A`` the learned label correlation,
    ``\hat d`` the L2-normalised target). The defaults are the published sizes and optimiser
    (Adam 1e-3, weight decay 1e-5, ExponentialLR 0.99); batch size and epochs belong to the
    run config.

    ``reference_quirks=True`` swaps the network for
    :class:`~mpcl.baselines.helo.reference.HeLoReferenceNet`, which computes what the released
    code (kaio-99/HeLo at 08dad27) computes, defects included, with its exact parameter count.
    The released code's evaluation (random-window rows in ``random_split`` order, epoch chosen
    on test, first sample of each test batch, raw features) is a data option, not a model one:
    ``experiments/protocols/published.yaml``. Both are off by default.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        hidden_dim: Token size D.
        num_heads: Heads of the fusion cross-attention and of the transformer layer.
        dropkey: DropKey ratio of the fusion cross-attention.
        ffn_dim: Feed-forward width of the transformer layer.
        dropout: Dropout of the transformer layer.
        head_dim: Hidden width of the MLP head.
        tokens_per_modality: Token counts of flat modalities (default: as published).
        cost_threshold: Threshold fraction of the transport costs.
        gw_iterations: Gromov-Wasserstein linearisation steps.
        ipot_iterations: IPOT steps per linearisation.
        ipot_beta: IPOT step size.
        transport: ``barycentric`` or ``plan`` (the reference's ``T @ H_P``); ``None``: the
            variant's own (``barycentric`` for the corrected model, ``plan`` for the reference,
            which allows no other).
        lambda_corr: Weight of the correlation alignment (MSE) term.
        kl_reduction: ``sum`` (published) or ``mean`` over the batch.
        reference_quirks: Use the released code's network (see above).
        optimizer: Callable building the optimizer.
        scheduler: Callable building an epoch-wise scheduler, or ``None``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        hidden_dim: int = 128,
        num_heads: int = 4,
        dropkey: float = 0.5,
        ffn_dim: int = 64,
        dropout: float = 0.5,
        head_dim: int = 128,
        tokens_per_modality: dict[str, int] | None = None,
        cost_threshold: float = 0.1,
        gw_iterations: int = 5,
        ipot_iterations: int = 20,
        ipot_beta: float = 0.1,
        transport: TransportKind | None = None,
        lambda_corr: float = 1.0,
        kl_reduction: Literal["mean", "sum"] = "sum",
        reference_quirks: bool = False,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__(metadata, optimizer=optimizer, scheduler=scheduler)
        if kl_reduction not in ("mean", "sum"):
            raise ValueError(
                f"HeLoModule: kl_reduction must be 'mean' or 'sum', got {kl_reduction!r}"
            )
        self.kl_reduction = kl_reduction
        self.lambda_corr = lambda_corr
        self.reference_quirks = reference_quirks
        common = dict(
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            dropkey=dropkey,
            ffn_dim=ffn_dim,
            dropout=dropout,
            head_dim=head_dim,
            tokens_per_modality=tokens_per_modality,
            cost_threshold=cost_threshold,
            gw_iterations=gw_iterations,
            ipot_iterations=ipot_iterations,
            ipot_beta=ipot_beta,
        )
        self.net: HeLoNet | HeLoReferenceNet
        if reference_quirks:
            if transport not in (None, "plan"):
                raise ValueError(
                    f"HeLoModule: reference_quirks=True computes the reference's T @ H_P; "
                    f"transport must be 'plan' or unset, got {transport!r}"
                )
            self.net = HeLoReferenceNet(self.metadata, **common)
        else:
            self.net = HeLoNet(self.metadata, transport=transport or "barycentric", **common)

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted distributions ``[B, C]`` and ``aux`` (see :class:`HeLoNet`).

        A missing modality (presence mask) is zero-filled, i.e. imputed by the training mean
        (:func:`~mpcl.nn.masking.fill_missing`): HeLo mixes a fixed number of tokens with a
        linear layer, so tokens cannot be left out without changing the architecture.
        """
        return self.net(fill_missing(batch, self.metadata.modalities))

    def auxiliary_losses(
        self, batch: Batch, preds: Tensor, aux: Mapping[str, Tensor]
    ) -> dict[str, tuple[float, Tensor]]:
        """``corr``: MSE between the learned and the ground-truth label correlation."""
        loss = correlation_alignment_loss(aux["label_correlation"], batch["target"])
        return {"corr": (self.lambda_corr, loss)}
