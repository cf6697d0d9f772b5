"""One random stream per model, so that dropout draws what each model's own run would draw.

A one-model run draws its dropout masks from the global generator, which starts every run at
the same state (one seed). Its position after ``t`` steps depends on the sizes of the batches it
has seen. Stacked models share one global generator, so this module keeps, per model, the
generator state its own run would have now: models with the same history share one state, a
vectorised call is made for models with the same state (and batch size) only, the generator is
set to that state before the call (before *each* call, when a group is cut into several calls)
and the state after it becomes the group's new state. A random op under ``vmap`` with
``randomness="same"`` draws exactly what the unbatched op draws, so every model sees its own
run's masks, also when subjects' epochs have different lengths.
"""

from __future__ import annotations

import torch
from torch import Tensor

RandomState = tuple[Tensor, Tensor | None]


class ModelStreams:
    """Per-model generator states (CPU, and the CUDA device's when models live there).

    Args:
        num_models: S.
        device: Where the models run; a CUDA device's generator is tracked as well.
    """

    def __init__(self, num_models: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.ids = torch.zeros(num_models, dtype=torch.int64)
        self._states: dict[int, RandomState] = {0: self.capture()}
        self._next = 1

    def capture(self) -> RandomState:
        """The global generators' current state."""
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def restore(self, state: RandomState) -> None:
        """Set the global generators to ``state``."""
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    def state_of(self, model: int) -> RandomState:
        """The state model ``model``'s own run would have now."""
        return self._states[int(self.ids[model])]

    def advance(self, models: Tensor, state: RandomState) -> None:
        """Models ``models`` drew together and are now at ``state``."""
        self._states[self._next] = state
        self.ids[models.cpu()] = self._next
        self._next += 1
        alive = set(self.ids.tolist())
        self._states = {k: v for k, v in self._states.items() if k in alive}
