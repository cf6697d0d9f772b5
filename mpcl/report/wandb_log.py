"""Log a run's report figures and co-occurrence matrices to Weights & Biases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mpcl.report.build import REPORT_FILE

#: Key prefix of everything the report logs.
PREFIX = "report"


def log_report(run: Any, report: Path) -> list[str]:
    """Log every PNG of ``report``'s figures as an image and each co-occurrence panel as a table.

    Args:
        run: A ``wandb`` run (``WandbLogger.experiment``).
        report: The ``report.html`` written by :func:`mpcl.report.build.run_report`.

    Returns:
        The logged keys.
    """
    import wandb

    figures = report.parent / "figures"
    payload: dict[str, Any] = {}
    for png in sorted(figures.glob("*.png")):
        payload[f"{PREFIX}/{png.stem}"] = wandb.Image(str(png), caption=png.stem)
    matrices = figures / "cooccurrence.csv"
    if matrices.is_file():
        frame = pd.read_csv(matrices)
        for panel, part in frame.groupby("panel", sort=False):
            names = list(dict.fromkeys(part["row"]))
            table = part.pivot(index="row", columns="column", values="value").loc[names, names]
            key = f"{PREFIX}/cooccurrence/{panel}".replace(", ", "-").replace(" ", "_")
            payload[key] = wandb.Table(dataframe=table.reset_index(names="emotion"))
    run.log(payload)
    return list(payload)


__all__ = ["REPORT_FILE", "log_report"]
