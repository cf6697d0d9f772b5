"""Exact resume: random-number states in every checkpoint, restored where training continues.

A checkpoint written at the end of epoch ``e`` holds the model, optimizer, scheduler, loop and
callback states; Lightning restores those but not the random-number generators, so dropout masks
(and anything else drawn from the global generators) differ after a resume. This callback adds the
torch CPU, CUDA (when initialised), numpy and Python ``random`` states to every checkpoint,
as captured when the checkpoint is written, and puts them back at the start of the first
training epoch after a resume: the point an uninterrupted run reaches next with the same states
(the training batches' order is a function of ``shuffle_seed`` and the epoch alone, see
:class:`~datamodules.batches.InMemoryBatches`). Everything between, the sanity check included,
may draw numbers without changing what the resumed epochs see.

It also makes the trainer write checkpoints with :class:`~mpcl.checkpoints.AtomicCheckpointIO`
(atomic writes in the checkpoint's own folder, the project's safe loader) unless a custom
checkpoint IO is configured.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback, LightningModule, Trainer

from mpcl.checkpoints import AtomicCheckpointIO


def collect_rng_states() -> dict[str, Any]:
    """The global generators' states, as tensors and plain Python (weights-only loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global generator is what is resumed)
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"].cpu())
    numpy_state = states["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(Callback):
    """Save the RNG states with every checkpoint and restore them when training resumes."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Use the atomic, safe checkpoint IO unless a custom one is configured."""
        strategy = trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()

    def state_dict(self) -> dict[str, Any]:
        """The generators' states at the moment the checkpoint is written."""
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved states until training continues."""
        self._pending = state_dict.get("rng")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """At the first epoch after a resume, continue the saved random streams."""
        if self._pending is not None:
            restore_rng_states(self._pending)
            self._pending = None
