"""S copies of one model as stacked tensors, run at once with ``torch.func.vmap``.

Every parameter ``W`` of the template module becomes one leaf tensor ``[S, *W.shape]`` and every
persistent buffer (e.g. MPCL's EMA prototype banks) one tensor ``[S, *shape]``. A forward of
model ``s`` is the template's forward with its tensors swapped for slice ``s``
(``torch.func.functional_call``); ``vmap`` over the leading axis turns the S forwards into one
call of batched kernels (``[S, B, F] x [S, F, H]`` matrix products instead of S small ones).

The loss of a group ``G`` of models is ``sum_{s in G} L_s``; its gradient with respect to slice
``s`` of a stacked leaf is ``dL_s / dW_s``, because no other term depends on that slice, so one
backward pass yields every model's own gradient.

Buffers written in place by a forward (the EMA memory update) are written into their own slice:
``vmap`` applies the in-place update to the stacked tensor, or, for a group that is a subset,
to a gathered copy that is scattered back after the call.

With ``compile=True`` the vectorised loss and prediction functions go through ``torch.compile``
(Inductor fuses the batched element-wise work; one compiled graph per group and batch size).
Compiled code draws dropout masks from its own generator (Philox), so a compiled run is not
bit-identical to the eager one; its accuracy is measured, not asserted (docs/many-subjects.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from mpcl.models.base import EmotionDistributionModule


def _stack(tensor: Tensor, copies: int) -> Tensor:
    return tensor.detach().unsqueeze(0).expand(copies, *tensor.shape).clone()


class StackedModels:
    """``num_models`` copies of ``module``, all starting from its current state.

    Args:
        module: The template; its structure defines the forward, its state the initial state of
            every copy (one-by-one runs with one seed also start every subject from one state).
        num_models: S.
        device: Where the stacked tensors live.
        compile: Run the vectorised loss and prediction through ``torch.compile``.
    """

    def __init__(
        self,
        module: EmotionDistributionModule,
        num_models: int,
        device: torch.device | str = "cpu",
        compile: bool = False,
    ) -> None:
        if num_models < 1:
            raise ValueError(f"StackedModels: num_models must be >= 1, got {num_models}")
        self.module = module.to(device)
        self.device = torch.device(device)
        self.num_models = num_models
        state_keys = set(module.state_dict())
        self.params: dict[str, Tensor] = {
            name: _stack(p, num_models).requires_grad_(p.requires_grad)
            for name, p in module.named_parameters()
        }
        # Persistent buffers are model state (EMA banks); non-persistent ones are constants
        # derived from the configuration (pooling matrices, sign masks) and stay shared.
        self.buffers: dict[str, Tensor] = {
            name: _stack(b, num_models) for name, b in module.named_buffers() if name in state_keys
        }
        # "same": a random op draws for the group what the unbatched op would draw; with the
        # generator set to the models' own state (ModelStreams) each model gets its own run's
        # dropout masks.
        self._losses = vmap(self._one_losses, randomness="same")
        self._predict = vmap(self._one_prediction, randomness="same")
        if compile:
            self._losses = torch.compile(self._losses, dynamic=False)
            self._predict = torch.compile(self._predict, dynamic=False)

    def parameters(self) -> list[Tensor]:
        """The stacked leaves, in the template's parameter order."""
        return list(self.params.values())

    def train(self, mode: bool = True) -> StackedModels:
        """Training or evaluation mode (dropout, memory updates) for every copy."""
        self.module.train(mode)
        return self

    def _select(self, tensors: Mapping[str, Tensor], models: Tensor | None) -> dict[str, Tensor]:
        if models is None:
            return dict(tensors)
        return {name: t.index_select(0, models) for name, t in tensors.items()}

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: Any) -> Any:
        return functional_call(self.module, (params, buffers), (batch,), strict=False)

    def losses(
        self, batch: Mapping[str, Tensor], models: Tensor | None = None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Every loss term and the predictions of the models ``models`` on their own batches.

        Args:
            batch: Columns ``[G, B, ...]``: row ``g`` is the batch of model ``models[g]``.
            models: Indices ``[G]`` into the S models; ``None`` for all of them in order.

        Returns:
            Loss terms ``name -> [G]`` as :meth:`EmotionDistributionModule.compute_losses`
            returns them per model (``loss`` is the optimised total), and the predicted
            distributions ``[G, B, C]`` (detached).
        """
        params = self._select(self.params, models)
        buffers = self._select(self.buffers, models)
        terms, preds = self._losses(params, buffers, dict(batch))
        if models is not None:
            with torch.no_grad():
                for name, value in buffers.items():
                    self.buffers[name].index_copy_(0, models, value)
        return terms, preds

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Tensor], models: Tensor | None = None) -> Tensor:
        """Predicted distributions ``[G, B, C]`` in the current mode, without targets.

        Only the modality columns are passed, so no model can use a target (MPCL's memory
        update and auxiliary losses need one).
        """
        params = self._select(self.params, models)
        buffers = self._select(self.buffers, models)
        modalities = {k: batch[k] for k in self.module.metadata.modalities if k in batch}
        return self._predict(params, buffers, modalities)

    def _one_losses(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor]:
        """One model's loss terms and detached predictions (the function ``vmap`` batches)."""
        preds, aux = self._call(params, buffers, batch)
        return self.module.compute_losses(batch, preds, aux), preds.detach()

    def _one_prediction(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> Tensor:
        """One model's predicted distributions."""
        return self._call(params, buffers, batch)[0]

    def state_dict(self, model: int) -> dict[str, Tensor]:
        """The template's ``state_dict`` holding model ``model``'s tensors (cloned, on CPU)."""
        state = self.module.state_dict()
        for name, value in self.tensors().items():
            state[name] = value[model].detach().cpu().clone()
        return {k: v.detach().cpu() for k, v in state.items()}

    def tensors(self) -> dict[str, Tensor]:
        """Every stacked tensor (parameters and persistent buffers) by name."""
        return {**self.params, **self.buffers}

    @torch.no_grad()
    def snapshot(self) -> dict[str, Tensor]:
        """A detached copy of every stacked tensor (for best-epoch bookkeeping)."""
        return {name: t.detach().clone() for name, t in self.tensors().items()}

    @torch.no_grad()
    def copy_into(self, target: dict[str, Tensor], models: Tensor) -> None:
        """``target[name][models] = current[name][models]`` for every stacked tensor."""
        for name, value in self.tensors().items():
            target[name].index_copy_(0, models, value.detach().index_select(0, models))

    @torch.no_grad()
    def load_snapshot(self, snapshot: Mapping[str, Tensor]) -> None:
        """Overwrite every stacked tensor with ``snapshot``'s."""
        for name, value in self.tensors().items():
            value.copy_(snapshot[name])
