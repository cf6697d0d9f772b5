"""The ``mpcl`` command line: LightningCLI with the framework's wiring.

``mpcl fit --config experiments/synthetic/mlp.yaml`` trains; ``validate``, ``test`` and
``predict`` work the same way. What this adds to a plain LightningCLI:

* models and datamodules in subclass mode (``model.class_path`` / ``data.class_path``);
* the datamodule's :class:`~datamodules.metadata.DatasetMetadata` linked into the model at
  instantiation, so no model config repeats a data set's shapes;
* a checkpoint callback watching the model's monitor (``val/kl``), configurable as
  ``--checkpoint.*``, and the test report (``--results.*``) that scores the trivial baselines on
  the same rows; the test pass saved for ``mpcl report`` (``--test_outputs.*``, see
  :class:`~mpcl.callbacks.test_outputs.TestOutputsWriter`);
* ``--test_after_fit true``: after ``fit``, test the best checkpoint on the test split;
* defaults: seed 3407, CSV logs under ``runs/``, the Rich progress bar, the resolved config saved
  with every run (and logged to W&B when a ``WandbLogger`` is configured, see
  :class:`~mpcl.callbacks.config.LoggedConfig`).
"""

from __future__ import annotations

import sys
from typing import Any

import torch.distributed
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from datamodules.base import FeatureDataModule
from mpcl.callbacks.config import LoggedConfig
from mpcl.callbacks.predictions import PredictionWriter
from mpcl.callbacks.results import TestResultsReport
from mpcl.callbacks.test_outputs import TestOutputsWriter
from mpcl.models.base import EmotionDistributionModule

DEFAULT_SEED = 3407


class MPCLCLI(LightningCLI):
    """LightningCLI for emotion-distribution models and feature datamodules."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link metadata into the model and add the always-present callbacks."""
        parser.link_arguments("data.metadata", "model.init_args.metadata", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": EmotionDistributionModule.monitor,
                "checkpoint.mode": EmotionDistributionModule.mode,
                "checkpoint.filename": "best-{epoch:03d}",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(TestResultsReport, "results")
        # The one test-time pass that `mpcl report` draws every figure from (--test_outputs.*).
        parser.add_lightning_class_args(TestOutputsWriter, "test_outputs")
        # Inert except in `predict`: writes every window's distribution (--predictions.output_path).
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="fit only: after training, test the best checkpoint on the test split",
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with the Rich progress bar unless a bar is configured or bars are off."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs.setdefault("callbacks", [*callbacks, RichProgressBar()])
        return super().instantiate_trainer(**kwargs)

    def after_fit(self) -> None:
        """With ``--test_after_fit true``, test the best checkpoint (the last without a monitor)."""
        if not self.config["fit"].get("test_after_fit"):
            return
        checkpoint = self.trainer.checkpoint_callback
        ckpt_path = "best" if checkpoint is not None and checkpoint.best_model_path else None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)


def build_cli(args: list[str] | None = None, run: bool = True) -> MPCLCLI:
    """Build (and by default run) the CLI; ``args`` replaces ``sys.argv[1:]`` (for tests)."""
    return MPCLCLI(
        model_class=EmotionDistributionModule,
        datamodule_class=FeatureDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=DEFAULT_SEED,
        trainer_defaults={
            "default_root_dir": "runs",
            "logger": {
                "class_path": f"{CSVLogger.__module__}.{CSVLogger.__name__}",
                "init_args": {"save_dir": "runs", "name": "mpcl"},
            },
        },
        save_config_callback=LoggedConfig,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(args: list[str] | None = None) -> None:
    """Console-script entry point; a distributed run leaves its process group destroyed.

    ``mpcl report ...`` is not a LightningCLI subcommand: it goes to :mod:`mpcl.report.cli`.
    """
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["report"]:
        from mpcl.report.cli import main as report_main

        raise SystemExit(report_main(argv[1:]))
    try:
        build_cli(args)
    finally:
        # Lightning keeps the process group alive after fit/test and leaves it to an atexit
        # handler; end it explicitly when the command is done (its handler then finds none).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
