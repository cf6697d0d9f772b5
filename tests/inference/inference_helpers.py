"""Helpers of the inference tests: raw rows of feature files, reference predictions, predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from datamodules.dmer import DMER_COLUMNS
from mpcl.cli import build_cli
from mpcl.export import checkpoint_statistics, load_checkpoint_model


def raw_rows(predict_dir: Path) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """The files' raw features by modality, subject ids and clip ids, in (id, row) order."""
    features: dict[str, list] = {m: [] for m in DMER_COLUMNS}
    subjects, trials = [], []
    for path in sorted(predict_dir.glob("*.mat"), key=lambda p: int(p.stem)):
        data = scipy.io.loadmat(path)
        for name, (first, end, shape) in DMER_COLUMNS.items():
            block = torch.tensor(data["feas"][:, first:end], dtype=torch.float32)
            features[name].append(block.reshape(len(block), *shape))
        subjects += [int(path.stem)] * len(data["feas"])
        trials += data["vids"].reshape(-1).astype(int).tolist()
    return {k: torch.cat(v) for k, v in features.items()}, np.array(subjects), np.array(trials)


def expected_predictions(ckpt: Path, raw: dict[str, torch.Tensor]) -> np.ndarray:
    """The checkpoint's model on the raw rows standardised with its training statistics."""
    model, checkpoint = load_checkpoint_model(ckpt)
    stats = checkpoint_statistics(checkpoint)
    batch = {m: ((x.double() - stats[m][0]) / stats[m][1]).float() for m, x in raw.items()}
    with torch.no_grad():
        return model(batch)[0].double().numpy()


def predict(ckpt: Path, args: list[str], predict_dir: Path, output: Path, root: Path) -> None:
    build_cli(
        [
            "predict",
            *args,
            f"--data.init_args.root={root}",
            f"--data.init_args.predict_root={predict_dir}",
            f"--ckpt_path={ckpt}",
            f"--predictions.output_path={output}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={output.parent}",
            f"--trainer.logger.init_args.save_dir={output.parent}",
        ]
    )
