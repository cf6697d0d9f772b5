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
from pathlib import Path
from typing import Any

import torch.distributed
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from datamodules.base import FeatureDataModule
from datamodules.protocols import DEFAULT_SEED
from mpcl.callbacks.checkpoint import EpochCheckpoint
from mpcl.callbacks.config import LoggedConfig
from mpcl.callbacks.predictions import PredictionWriter
from mpcl.callbacks.results import TestResultsReport
from mpcl.callbacks.resume import ExactResume
from mpcl.callbacks.test_outputs import TestOutputsWriter
from mpcl.checkpoints import load_checkpoint, resolve_checkpoint_path
from mpcl.errors import pop_debug_flag, report_errors
from mpcl.models.base import EmotionDistributionModule
from mpcl.resume_paths import (
    keep_previous_metrics,
    newest_last_checkpoint,
    remove_stale_temporaries,
    run_version_of,
)


class MPCLCLI(LightningCLI):
    """LightningCLI for emotion-distribution models and feature datamodules."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link metadata into the model and add the always-present callbacks."""
        parser.link_arguments("data.metadata", "model.init_args.metadata", apply_on="instantiate")
        parser.add_lightning_class_args(EpochCheckpoint, "checkpoint")
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
        # RNG states in every checkpoint, atomic checkpoint writes, the safe loader.
        extra = list(kwargs.get("callbacks", callbacks))
        if not any(isinstance(c, ExactResume) for c in extra):
            kwargs["callbacks"] = [*extra, ExactResume()]
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        """Resolve, safely load and check ``--ckpt_path`` before anything it names is imported.

        ``last`` becomes the newest ``last.ckpt`` of the configured logger folder; a ``file://``
        URL becomes its path; remote URLs are refused (:mod:`mpcl.checkpoints`). ``fit`` from a
        checkpoint of ``<save_dir>/<name>/version_N`` continues in that folder, so the
        best-checkpoint history is kept. Then, as in LightningCLI, the checkpoint's
        hyper-parameters (its model class, checked first) update the config.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        sub = self.config[subcommand]
        ckpt_path = sub.get("ckpt_path")
        if not ckpt_path or ckpt_path in ("best", "hpc", "registry"):
            return
        logger_args = self._logger_init_args(sub)
        if ckpt_path == "last":
            if logger_args is None or logger_args.get("save_dir") is None:
                return  # Lightning's own search (the checkpoint callback's folder)
            found = newest_last_checkpoint(logger_args["save_dir"], logger_args.get("name"))
            if found is None:
                folder = Path(logger_args["save_dir"]) / (logger_args.get("name") or "")
                print(
                    f"--ckpt_path last: no version_*/checkpoints/last.ckpt under {folder}; "
                    "starting from the first epoch",
                    file=sys.stderr,
                    flush=True,
                )
                sub["ckpt_path"] = None
                return
            ckpt_path = str(found)
        local = resolve_checkpoint_path(ckpt_path)
        checkpoint = load_checkpoint(ckpt_path)  # errors name the path as given
        sub["ckpt_path"] = str(local)
        if subcommand == "fit" and logger_args is not None and logger_args.get("version") is None:
            save_dir = logger_args.get("save_dir")
            version = run_version_of(local, save_dir, logger_args.get("name")) if save_dir else None
            if version is not None:
                logger_args["version"] = version
                keep_previous_metrics(Path(local).parent.parent)
                remove_stale_temporaries(Path(local).parent)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    @staticmethod
    def _logger_init_args(sub: Any) -> Any:
        """The ``init_args`` of the one configured logger with a ``save_dir``, else ``None``."""
        trainer = sub.get("trainer")
        logger = trainer.get("logger") if trainer is not None else None
        if not hasattr(logger, "get") or logger.get("init_args") is None:
            return None
        init_args = logger.get("init_args")
        return init_args if "save_dir" in init_args else None

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

    An error is reported in one line (exit status 1); ``--debug`` or ``MPCL_DEBUG=1`` shows the
    traceback (:mod:`mpcl.errors`). ``mpcl report ...`` is not a LightningCLI subcommand: it goes
    to :mod:`mpcl.report.cli`.
    """
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["report"]:
        from mpcl.report.cli import main as report_main

        raise SystemExit(report_main(argv[1:]))
    if args is None:
        sys.argv[1:], debug = pop_debug_flag(sys.argv[1:])
    else:
        args, debug = pop_debug_flag(list(args))
    try:
        status = report_errors("mpcl", lambda: build_cli(args), debug)
        if status == 1:
            raise SystemExit(1)
    finally:
        # Lightning keeps the process group alive after fit/test and leaves it to an atexit
        # handler; end it explicitly when the command is done (its handler then finds none).
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
