"""Test-time report: the model's six metrics beside the trivial baselines, printed and saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from datamodules.scoring import scored_rows
from mpcl.guards import finite_or_none
from mpcl.io import atomic_write_text, unused_path
from mpcl.metrics import LDL_METRICS, LDLMetrics
from mpcl.tables import markdown_table


class TestResultsReport(Callback):
    """Score the trivial baselines on the same test rows as the model and report all of them.

    DMER labels are flat, so a model's numbers mean little without the baselines beside them.
    During ``trainer.test`` this callback feeds every test batch to two more metric collections:

    * ``train-mean``: the mean target distribution of the training split, for every row;
    * ``uniform``: ``1 / C`` for every emotion.

    At the end it prints one Markdown table (model and baselines; columns the six metrics) and
    writes ``test_results.json`` and ``test_results.md`` beside the run's logs, atomically; a
    second test into the same folder writes ``test_results-1.json`` and so on, never replacing.
    The baselines' metrics are synchronised across processes like the model's.

    Args:
        filename: Stem of the result files.
        output_dir: Folder of the result files; default: the trainer's log folder.
        print_table: Print the table on rank zero.
    """

    def __init__(
        self,
        filename: str = "test_results",
        output_dir: str | None = None,
        print_table: bool = True,
    ) -> None:
        self.filename = filename
        self.output_dir = output_dir
        self.print_table = print_table
        self.baseline_metrics: dict[str, LDLMetrics] = {}
        self.baseline_preds: dict[str, Tensor] = {}
        self.num_samples = 0
        self.last_results: dict[str, dict[str, float]] = {}
        self.last_path: Path | None = None

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Prepare the baseline predictions from the datamodule's training split."""
        datamodule = trainer.datamodule
        num_emotions = pl_module.metadata.num_emotions
        self.baseline_preds = {"uniform": torch.full((num_emotions,), 1.0 / num_emotions)}
        if datamodule is not None and hasattr(datamodule, "train_target_mean"):
            self.baseline_preds["train-mean"] = datamodule.train_target_mean().float()
        self.baseline_metrics = {
            name: LDLMetrics().to(pl_module.device) for name in self.baseline_preds
        }
        self.num_samples = 0

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Score the baselines on this batch's scored targets (every row unless marked)."""
        (target,) = scored_rows(batch, batch["target"])
        self.num_samples += len(target)
        for name, metrics in self.baseline_metrics.items():
            pred = self.baseline_preds[name].to(target.device).expand_as(target)
            metrics.update(pred, target)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute, print and save the table."""
        model_name = type(pl_module).__name__
        logged = trainer.callback_metrics
        results: dict[str, dict[str, float]] = {
            model_name: {
                m.name: float(logged[f"test/{m.name}"])
                for m in LDL_METRICS
                if f"test/{m.name}" in logged
            }
        }
        for name, metrics in self.baseline_metrics.items():
            results[name] = {k: float(v) for k, v in metrics.compute().items()}
            metrics.reset()
        self.last_results = results
        # Summed over processes: equals the test split's size when every row is scored once.
        total = trainer.strategy.reduce(
            torch.tensor(self.num_samples, device=pl_module.device), reduce_op="sum"
        )
        self.num_samples = int(total)
        # trainer.log_dir broadcasts from rank zero: a collective, so every rank must ask.
        out_dir = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        table = markdown_table(results)
        if self.print_table:
            data_name = type(trainer.datamodule).__name__
            print(
                f"\nTest metrics on {data_name} ({self.num_samples} test samples):\n{table}\n",
                flush=True,
            )
        json_path = unused_path(out_dir / f"{self.filename}.json")
        payload = {
            "model": model_name,
            "num_samples": self.num_samples,
            "world_size": trainer.world_size,
            "ckpt_path": trainer.ckpt_path,
            "results": results,
        }
        # NaN / inf become null: the file stays valid JSON (json.dumps would write bare NaN).
        text = json.dumps(finite_or_none(payload), indent=2, allow_nan=False)
        atomic_write_text(json_path, text + "\n")
        atomic_write_text(json_path.with_suffix(".md"), table + "\n")
        self.last_path = json_path
