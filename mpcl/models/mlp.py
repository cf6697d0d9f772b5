"""Early-fusion MLP: the simple, solid baseline of the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from datamodules.metadata import DatasetMetadata
from mpcl.models.base import Batch, EmotionDistributionModule, adam, exponential_decay
from mpcl.nn.masking import fill_missing, presence_matrix


class EarlyFusionMLP(nn.Module):
    """Flatten and concatenate every modality, then an MLP to C logits.

    Args:
        input_dims: Flattened feature size per modality, in concatenation order.
        num_emotions: Number C of output classes.
        hidden_dims: Widths of the hidden layers.
        dropout: Dropout after every hidden layer.
    """

    def __init__(
        self,
        input_dims: Sequence[int],
        num_emotions: int,
        hidden_dims: Sequence[int] = (256, 128),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = int(sum(input_dims))
        for hidden in hidden_dims:
            layers += [
                nn.Linear(width, hidden),
                nn.LayerNorm(hidden),
                nn.GELU(),
                nn.Dropout(dropout),
            ]
            width = hidden
        layers.append(nn.Linear(width, num_emotions))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits ``[B, C]`` from per-modality feature tensors ``[B, *shape]``."""
        flat = torch.cat([f.flatten(start_dim=1) for f in features], dim=1)
        return self.layers(flat)


class MLPModule(EmotionDistributionModule):
    """Early-fusion MLP trained with ``KL(d || softmax(MLP([x_1, ..., x_M])))``.

    Missing modalities (presence masks, :mod:`mpcl.nn.masking`): the standard remedy of an
    input-concatenation model, zero-fill (the training mean of standardised features) plus one
    missing indicator per modality, ``h_1 = W_1 [x_1, ..., x_M] + b_1 + U (1 - p)`` with ``p``
    the presence vector. ``U`` starts at zero and is a parameter that only ever receives gradient
    from windows with a missing modality, so a model trained and tested on complete data is the
    plain MLP, bit for bit.

    Args:
        metadata: Data set description; linked from the datamodule by the CLI.
        hidden_dims: Widths of the hidden layers.
        dropout: Dropout probability after every hidden layer.
        modalities: Modalities to use (default: all of the metadata's branches).
        optimizer: Callable building the optimizer.
        scheduler: Callable building an epoch-wise scheduler, or ``None``.
    """

    def __init__(
        self,
        metadata: DatasetMetadata | dict[str, Any],
        hidden_dims: list[int] | None = None,
        dropout: float = 0.3,
        modalities: list[str] | None = None,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = exponential_decay,
    ) -> None:
        super().__init__(metadata, optimizer=optimizer, scheduler=scheduler)
        self.modalities = tuple(modalities) if modalities else self.metadata.modalities
        unknown = [m for m in self.modalities if m not in self.metadata.modality_shapes]
        if unknown:
            raise ValueError(
                f"MLPModule: modalities {unknown} are not in the data set "
                f"(available: {sorted(self.metadata.modality_shapes)})"
            )
        self.net = EarlyFusionMLP(
            input_dims=[self.metadata.feature_dim(m) for m in self.modalities],
            num_emotions=self.num_emotions,
            hidden_dims=hidden_dims if hidden_dims is not None else [256, 128],
            dropout=dropout,
        )
        first_width = self.net.layers[0].out_features
        # Zeros (no random draw), so adding it changes no other parameter's initialisation.
        self.missing_weight = nn.Parameter(torch.zeros(len(self.modalities), first_width))

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Predicted distributions ``[B, C]`` and ``aux`` with ``logits`` and ``log_probs``."""
        batch = fill_missing(batch, self.modalities)
        features = [batch[m] for m in self.modalities]
        present = presence_matrix(batch, self.modalities, features[0])
        flat = torch.cat([f.flatten(start_dim=1) for f in features], dim=1)
        if present is None:
            # All present: the indicator term is exactly zero, but it stays in the graph so that
            # the parameter always has a (zero) gradient, as DDP and stacked training expect.
            missing = flat.new_zeros(flat.shape[0], len(self.modalities))
        else:
            missing = (~present).to(flat.dtype)
        hidden = self.net.layers[0](flat) + missing @ self.missing_weight
        logits = self.net.layers[1:](hidden)
        log_probs = torch.log_softmax(logits, dim=-1)
        return log_probs.exp(), {"logits": logits, "log_probs": log_probs}
