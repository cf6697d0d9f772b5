"""One training epoch through Lightning against the same work in a bare PyTorch loop.

Both loops run a freshly built model over the datamodule's training split in the same order
(the in-memory batches of epoch 0) and do the same per-step work of the module: forward, the full
objective, the loss-term and metric accumulation the module keeps for its epoch logs, backward and
the optimizer step; at the end of the epoch both compute the epoch means and metrics and step the
scheduler. What differs is what Lightning adds: its loops, hooks, closure, batch-transfer
handling and logging. Lightning runs with the logger, checkpointing, progress bar and model
summary off and no validation; its time is taken from ``on_train_start`` to ``on_train_end``, so
the one-time ``fit`` set-up is left out on both sides.

``overhead = t_lightning / t_bare``, from the medians of interleaved repeats.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.measure import TrainStep, optimizer_and_scheduler
from benchmarks.timing import Elapsed, Stopwatch, summary
from datamodules.base import FeatureDataModule
from datamodules.batches import InMemoryBatches
from mpcl.models.epoch_means import EpochMeans


class _LoopTimer(Callback):
    """Times Lightning's training loop, from ``on_train_start`` to ``on_train_end``."""

    def __init__(self, device: torch.device) -> None:
        self.watch = Stopwatch(device)
        self.elapsed: Elapsed | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.watch.start()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.elapsed = self.watch.stop()


def lightning_epoch(model: Any, datamodule: FeatureDataModule, device: torch.device) -> Elapsed:
    """One epoch of ``Trainer.fit`` (the real loop and datamodule), timed inside ``fit``."""
    timer = _LoopTimer(device)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(
            accelerator=device.type,
            devices=1,
            max_epochs=1,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            callbacks=[timer],
        )
        trainer.fit(model, datamodule=datamodule)
    if timer.elapsed is None:
        raise RuntimeError("lightning_epoch: the training loop did not run (no training batches?)")
    return timer.elapsed


def bare_epoch(model: Any, datamodule: FeatureDataModule, device: torch.device) -> Elapsed:
    """The same epoch as a plain loop over the same in-memory batches, on the same device."""
    model.to(device).train()
    optimizer, scheduler = optimizer_and_scheduler(model)
    if optimizer is None:
        raise ValueError(f"{type(model).__name__} has no optimizer: nothing to train")
    step = TrainStep(model, optimizer)
    # The table moves to the device once, before timing, as the datamodule does under Lightning.
    table = {k: v.to(device) for k, v in datamodule.split_rows("train").items()}
    loader = InMemoryBatches(
        table, batch_size=datamodule.batch_size, shuffle=True, seed=datamodule.shuffle_seed
    )
    loader.set_epoch(0)
    means, metrics = EpochMeans(), model.train_metrics
    metrics.reset()
    watch = Stopwatch(device)
    watch.start()
    for batch in loader:
        out = step(batch)
        size = len(batch["target"])
        terms = {k: v.detach() for k, v in out.items() if k != "preds"}
        means.update(terms, size)
        metrics.update(out["preds"].detach(), batch["target"])
    means.compute()
    metrics.compute()
    metrics.reset()
    if scheduler is not None:
        scheduler.step()
    return watch.stop()


def compare_epochs(
    build: Callable[[], Any],
    datamodule: FeatureDataModule,
    device: torch.device,
    repeats: int,
    warmup: int = 1,
) -> dict[str, Any]:
    """Interleaved Lightning and bare epochs on fresh models; medians and their ratio.

    Interleaving (L, B, L, B, ...) spreads slow phases of a shared machine over both sides.

    Args:
        build: Returns a freshly built model (same seed every time).
        datamodule: The real datamodule, set up.
        device: Where both loops train.
        repeats: Timed pairs.
        warmup: Untimed pairs first (allocator, kernels and code paths warm up).
    """
    datamodule.setup("fit")
    samples: dict[str, list[Elapsed]] = {"lightning": [], "bare": []}
    for index in range(warmup + repeats):
        pair = {
            "lightning": lightning_epoch(build(), datamodule, device),
            "bare": bare_epoch(build(), datamodule, device),
        }
        if index >= warmup:
            for side, elapsed in pair.items():
                samples[side].append(elapsed)
    result: dict[str, Any] = {
        "steps": len(
            InMemoryBatches(datamodule.split_rows("train"), batch_size=datamodule.batch_size)
        ),
        "rows": len(datamodule.split_rows("train")["target"]),
        "batch_size": datamodule.batch_size,
    }
    for clock in ("wall", "cpu"):
        lightning = summary([getattr(e, clock) for e in samples["lightning"]])
        bare = summary([getattr(e, clock) for e in samples["bare"]])
        result[f"lightning_{clock}_s"] = lightning
        result[f"bare_{clock}_s"] = bare
        result[f"overhead_{clock}"] = lightning["median"] / bare["median"]
    return result
