"""Write predicted emotion distributions, one row per window, to CSV or Parquet.

``mpcl predict --config RUN.yaml --ckpt_path best.ckpt --data.init_args.predict_root DIR
--predictions.output_path preds.csv`` runs the model over every row of the feature files in
``DIR`` and writes::

    subject, trial, index, <emotion 1>, ..., <emotion C>

``index`` is the row's position in the prediction source (or its row id in the data set's table
when the test rows are predicted), so every row of the output names the window it belongs to.
Rows are sorted by ``index``. Under DDP every rank predicts its own rows; they are gathered on
rank 0, which writes the one file, atomically (temporary file, then rename).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from mpcl.guards import NonFiniteError
from mpcl.io import atomic_write

ID_COLUMNS = ("subject", "trial", "index")
PARQUET_SUFFIXES = (".parquet", ".pq")


def parquet_engine() -> str | None:
    """The installed pandas Parquet engine (``pyarrow`` or ``fastparquet``), or ``None``."""
    for engine in ("pyarrow", "fastparquet"):
        if importlib.util.find_spec(engine) is not None:
            return engine
    return None


def output_format(path: str | os.PathLike[str]) -> Literal["csv", "parquet"]:
    """``parquet`` for ``.parquet`` / ``.pq``, ``csv`` for ``.csv``.

    Raises:
        ValueError: Another suffix.
        ImportError: Parquet without pyarrow or fastparquet installed.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        if parquet_engine() is None:
            raise ImportError(
                f"PredictionWriter.output_path={str(path)!r}: writing Parquet needs pyarrow "
                "(pip install pyarrow) or fastparquet; neither is installed. Use a .csv path."
            )
        return "parquet"
    raise ValueError(
        f"PredictionWriter.output_path={str(path)!r}: expected a .csv, .parquet or .pq file"
    )


def write_frame_atomically(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` as CSV or Parquet (by suffix) to a temporary file, then rename it."""
    path = Path(path)
    kind = output_format(path)

    def write(tmp: Path) -> None:
        if kind == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False, engine=parquet_engine())

    return atomic_write(path, write)


def predictions_frame(
    parts: Sequence[dict[str, torch.Tensor]], emotion_names: Sequence[str]
) -> pd.DataFrame:
    """One frame of prediction parts (``preds`` ``[B, C]`` and id columns), sorted by ``index``."""
    clash = sorted(set(emotion_names) & set(ID_COLUMNS))
    if clash:
        raise ValueError(f"PredictionWriter: emotion names {clash} collide with the id columns")
    columns: dict[str, Any] = {}
    for key in ID_COLUMNS:
        values = [p[key] for p in parts if key in p]
        if len(values) == len(parts) and parts:
            columns[key] = torch.cat(values).numpy()
    preds = (
        torch.cat([p["preds"] for p in parts]).double().numpy()
        if parts
        else torch.empty(0, len(emotion_names), dtype=torch.float64).numpy()
    )
    if preds.shape[1] != len(emotion_names):
        raise ValueError(
            f"PredictionWriter: predictions have {preds.shape[1]} columns but the metadata names "
            f"{len(emotion_names)} emotions"
        )
    frame = pd.DataFrame(columns)
    for c, name in enumerate(emotion_names):
        frame[name] = preds[:, c]
    if "index" in frame:
        frame = frame.sort_values("index", kind="stable").reset_index(drop=True)
    return frame


def check_finite_predictions(frame: pd.DataFrame, emotion_names: Sequence[str]) -> None:
    """Refuse to write a table with a NaN or infinite predicted probability.

    Raises:
        NonFiniteError: Naming how many rows are affected and the first one's ids.
    """
    values = frame[list(emotion_names)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = frame.loc[np.flatnonzero(bad)[0], [c for c in ID_COLUMNS if c in frame]]
        raise NonFiniteError(
            f"PredictionWriter: {int(bad.sum())} of {len(frame)} predicted rows are not finite "
            f"(first: {first.to_dict()}); nothing was written. Check the checkpoint's "
            "standardisation statistics and the features"
        )


class PredictionWriter(BasePredictionWriter):
    """Collect ``predict_step`` outputs and write them as one table at the end of ``predict``.

    Args:
        output_path: ``.csv``, ``.parquet`` or ``.pq`` file; default ``predictions.csv`` in the
            trainer's log folder. A Parquet path without pyarrow / fastparquet fails here, before
            anything is predicted.
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="batch")
        if output_path is not None:
            output_format(output_path)
        self.output_path = output_path
        self._parts: list[dict[str, torch.Tensor]] = []
        self.last_path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start a new table."""
        self._parts = []

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Keep this batch's distributions and row ids (on the CPU)."""
        if not isinstance(prediction, dict) or "preds" not in prediction:
            raise TypeError(
                "PredictionWriter: predict_step must return a dict with 'preds' [B, C] "
                f"(EmotionDistributionModule.predict_step does), got {type(prediction).__name__}"
            )
        keep = ("preds", *ID_COLUMNS)
        self._parts.append({k: v.detach().cpu() for k, v in prediction.items() if k in keep})

    def _gathered(self, trainer: Trainer) -> list[dict[str, torch.Tensor]] | None:
        """Every rank's parts on rank 0 (``None`` on the other ranks)."""
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self._parts
        gathered: list[Any] | None = [None] * trainer.world_size if trainer.is_global_zero else None
        dist.gather_object(self._parts, gathered, dst=0)
        if gathered is None:
            return None
        return [part for parts in gathered for part in parts]

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather on rank 0 and write the table."""
        parts = self._gathered(trainer)
        self._parts = []
        if parts is not None and trainer.is_global_zero:
            names = pl_module.metadata.emotion_names
            path = self.output_path or str(
                Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"
            )
            frame = predictions_frame(parts, names)
            check_finite_predictions(frame, names)
            self.last_path = write_frame_atomically(frame, path)
            print(f"Predictions of {sum(len(p['preds']) for p in parts)} rows: {path}", flush=True)
        trainer.strategy.barrier("PredictionWriter")
