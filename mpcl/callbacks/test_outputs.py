"""The one extraction pass over the test set that every report figure is drawn from.

During ``trainer.test`` a forward hook on the model keeps, for every test window, the predicted
distribution, the target, the row ids and (for MPCL) the model's own ``aux`` outputs; at the end
they are written with :func:`mpcl.run_folder.write_test_outputs` beside ``test_results.json``.
Nothing is recomputed afterwards: the report reads these arrays only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from mpcl.run_folder import write_test_outputs

ID_KEYS = ("subject", "trial", "index")


def _mean_last(value: Tensor) -> Tensor:
    return value.float().mean(dim=-1)


def _mean_tokens(value: Tensor) -> Tensor:
    return value.float().mean(dim=1)


def _as_float(value: Tensor) -> Tensor:
    return value.float()


#: Per-window ``aux`` entries kept, by name prefix, and how each is reduced to a compact row:
#: the branch gate ``[B, C, D]`` is averaged over features (the physiological share per emotion),
#: the MSAM scale gate ``[B, T, S]`` over the anchor tokens.
AUX_REDUCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "cooccurrence": _as_float,
    "branch_gate": _mean_last,
    "scale_gate_": _mean_tokens,
    "relations_": _as_float,
    "embedding_": _as_float,
    "assignments_": lambda v: v.to(torch.int16),
    "compression_attention": _as_float,
}


def _reduction(key: str) -> Callable[[Tensor], Tensor] | None:
    for prefix, reduce in AUX_REDUCTIONS.items():
        if key == prefix or (prefix.endswith("_") and key.startswith(prefix)):
            return reduce
    return None


class TestOutputsWriter(Callback):
    """Save every test window's prediction, target, ids and model internals (``test_outputs``).

    Writes ``test_outputs.npz`` / ``.json`` (see :mod:`mpcl.run_folder`) in ``output_dir`` (default
    the trainer's log folder, where ``test_results.json`` goes). Under DDP every rank keeps its
    own rows; rank 0 gathers them and writes one file, rows sorted by ``index``, each once.

    Args:
        output_dir: Folder of the files; default the trainer's log folder.
        enabled: Turn the pass off (``--test_outputs.enabled false``).
        max_embeddings: Most windows whose branch embeddings (``[D]`` each) are kept, evenly
            spaced in row order; the 2-D projection needs a sample, not every window.
    """

    def __init__(
        self, output_dir: str | None = None, enabled: bool = True, max_embeddings: int = 3000
    ) -> None:
        if max_embeddings < 0:
            raise ValueError(
                f"TestOutputsWriter: max_embeddings must be >= 0, got {max_embeddings}"
            )
        self.output_dir = output_dir
        self.enabled = enabled
        self.max_embeddings = max_embeddings
        self._parts: list[dict[str, Tensor]] = []
        self._handle: Any = None
        self.last_path: Path | None = None

    def _keep(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        batch = args[0] if args else None
        if not isinstance(batch, Mapping) or "target" not in batch:
            return
        preds, aux = output if isinstance(output, tuple) else (output, {})
        part = {"preds": preds.detach().float().cpu(), "target": batch["target"].float().cpu()}
        for key in ID_KEYS:
            if key in batch:
                part[key] = batch[key].detach().cpu()
        for key, value in (aux or {}).items():
            reduce = _reduction(key)
            if reduce is not None and isinstance(value, Tensor) and len(value) == len(preds):
                part[key] = reduce(value.detach()).cpu()
        self._parts.append(part)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start collecting (the hook sees every forward of the test loop)."""
        self._parts = []
        if self.enabled and self._handle is None:
            self._handle = pl_module.register_forward_hook(self._keep)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop collecting, gather on rank 0 and write."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if not self.enabled:
            return
        parts = self._gathered(trainer)
        self._parts = []
        out_dir = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        if parts and trainer.is_global_zero:
            arrays = self._arrays(parts, trainer)
            state = getattr(pl_module, "analysis_state", None)
            if callable(state):
                arrays.update({k: v.detach().cpu().numpy() for k, v in state().items()})
            self.last_path = write_test_outputs(out_dir, arrays, self._meta(trainer, pl_module))
        trainer.strategy.barrier("TestOutputsWriter")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """With a W&B logger: write the run's report and log its figures and matrices."""
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        # trainer.log_dir is a collective under DDP: every rank asks, rank zero writes.
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or self.last_path is None:
            return
        from mpcl.report.build import run_report
        from mpcl.report.wandb_log import log_report
        from mpcl.run_folder import RunFolder

        folder = self.last_path.parent
        logs = [Path(log_dir)] if log_dir else []
        report = run_report(RunFolder(folder, logs), folder / "report")
        for logger in loggers:
            log_report(logger.experiment, report)

    def _gathered(self, trainer: Trainer) -> list[dict[str, Tensor]]:
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self._parts
        gathered: list[Any] | None = [None] * trainer.world_size if trainer.is_global_zero else None
        dist.gather_object(self._parts, gathered, dst=0)
        return [] if gathered is None else [p for parts in gathered for p in parts]

    def _arrays(self, parts: list[dict[str, Tensor]], trainer: Trainer) -> dict[str, np.ndarray]:
        keys = [k for k in parts[0] if all(k in p for p in parts)]
        arrays = {k: torch.cat([p[k] for p in parts]).numpy() for k in keys}
        if "index" in arrays:
            order = np.argsort(arrays["index"], kind="stable")
            arrays = {k: v[order] for k, v in arrays.items()}
            category = self._categories(trainer, arrays["index"])
            if category is not None:
                arrays["category"] = category
        embeddings = [k for k in arrays if k.startswith("embedding_")]
        if embeddings:
            n = len(arrays["preds"])
            rows = np.unique(np.linspace(0, n - 1, min(n, self.max_embeddings)).astype(np.int64))
            arrays["embedding_rows"] = rows
            for key in embeddings:
                arrays[key] = arrays[key][rows]
        train = self._train_targets(trainer)
        if train is not None:
            # The training targets' co-occurrence needs only their second moment (C x C).
            arrays["train_target_second_moment"] = train.T @ train / max(len(train), 1)
        return arrays

    @staticmethod
    def _train_targets(trainer: Trainer) -> np.ndarray | None:
        """The training split's targets ``[N, C]`` (float64), if the datamodule has them."""
        split_rows = getattr(trainer.datamodule, "split_rows", None)
        if not callable(split_rows):
            return None
        try:
            target = split_rows("train")["target"]
        except (RuntimeError, KeyError):
            return None
        return target.detach().cpu().double().numpy()

    @staticmethod
    def _categories(trainer: Trainer, index: np.ndarray) -> np.ndarray | None:
        """The trial category of each row (DMER: positive / negative / mixed clip), if known."""
        table = getattr(trainer.datamodule, "table", None)
        category = getattr(table, "category", None)
        if category is None or len(index) == 0 or int(index.max()) >= len(category):
            return None
        return category.cpu().numpy()[index]

    @staticmethod
    def _meta(trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metadata = pl_module.metadata
        names = getattr(trainer.datamodule, "category_names", None)
        return {
            "model": type(pl_module).__name__,
            "dataset": metadata.name,
            "emotion_names": list(metadata.emotion_names),
            "valence_groups": list(metadata.valence_groups),
            "physiological": list(metadata.physiological),
            "behavioral": list(metadata.behavioral),
            "category_names": {str(k): v for k, v in (names or {}).items()},
            "ckpt_path": trainer.ckpt_path,
        }
