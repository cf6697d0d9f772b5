"""Save the resolved LightningCLI config beside the logs and hand it to Weights & Biases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from mpcl.io import atomic_write_text

#: Key of the resolved config in a W&B run's config, and the file name it is uploaded as.
#: Namespaced so that it never collides with the model's hyper-parameters (which Lightning logs at
#: the top level) or with a sweep's dotted parameter names.
WANDB_CONFIG_KEY = "cli"
WANDB_CONFIG_FILE = "cli_config.yaml"


class LoggedConfig(SaveConfigCallback):
    """Write ``config.yaml`` to the log folder (as LightningCLI does) and log it to W&B.

    For every :class:`~lightning.pytorch.loggers.WandbLogger` of the trainer, the resolved config
    (every default filled in, exactly what ``config.yaml`` holds) goes

    * into the run's config under ``cli`` (``cli.model.init_args.lambda_prd`` ...), so that runs
      can be filtered and compared by any setting in the W&B UI;
    * into the run's files as ``cli_config.yaml``, so that ``mpcl fit --config cli_config.yaml``
      reproduces the run. In offline mode both are stored in the local run and uploaded by
      ``wandb sync``.

    Lightning calls :meth:`save_config` on rank zero only.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Log the resolved config to each W&B logger."""
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        text = self.parser.dump(self.config, skip_none=False)
        resolved: dict[str, Any] = yaml.safe_load(text)
        for logger in loggers:
            run = logger.experiment
            run.config.update({WANDB_CONFIG_KEY: resolved}, allow_val_change=True)
            if run.settings.mode == "disabled":
                continue  # a no-op run: its folder is a throw-away temporary one
            # Files in the run folder are uploaded with the run (by `wandb sync` when offline).
            path = atomic_write_text(Path(run.dir) / WANDB_CONFIG_FILE, text)
            run.save(str(path), base_path=run.dir, policy="now")
