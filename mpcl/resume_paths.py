"""Where a resumed run continues: the checkpoint's own run folder, found from ``--ckpt_path``.

A run logs to ``<save_dir>/<name>/version_N/`` with its checkpoints in ``checkpoints/``. A resume
that opened a new ``version_{N+1}`` would start a new best-checkpoint history (Lightning restores
the top-k record only when the checkpoint folder is unchanged), so a resume continues in the
folder the checkpoint came from, and ``--ckpt_path last`` names the newest ``last.ckpt`` of the
configured ``<save_dir>/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

LAST_NAME = "last.ckpt"
METRICS_FILE = "metrics.csv"


def newest_last_checkpoint(save_dir: str | os.PathLike[str], name: str | None) -> Path | None:
    """The most recently written ``<save_dir>/<name>/version_*/checkpoints/last.ckpt``, if any."""
    root = Path(save_dir) / (name or "")
    candidates = [p for p in root.glob(f"version_*/checkpoints/{LAST_NAME}") if p.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime_ns)


def run_version_of(
    ckpt_path: str | os.PathLike[str], save_dir: str | os.PathLike[str], name: str | None
) -> str | None:
    """The ``version_N`` folder name of a checkpoint in ``<save_dir>/<name>/version_N/checkpoints``.

    ``None`` when the checkpoint lies elsewhere (a resume from a copied file starts a new folder).
    """
    path = Path(ckpt_path).resolve()
    version_dir = path.parent.parent
    if path.parent.name != "checkpoints" or not version_dir.name.startswith("version_"):
        return None
    if version_dir.parent != (Path(save_dir) / (name or "")).resolve():
        return None
    return version_dir.name


def keep_previous_metrics(version_dir: str | os.PathLike[str]) -> Path | None:
    """Move an earlier ``metrics.csv`` aside (``metrics-1.csv`` ...) before the logger deletes it.

    Lightning's CSV logger removes ``metrics.csv`` from a folder it reopens; the resumed run's
    rows are then written to a fresh ``metrics.csv``.
    """
    metrics = Path(version_dir) / METRICS_FILE
    if not metrics.is_file():
        return None
    n = 1
    while (target := metrics.with_name(f"metrics-{n}.csv")).exists():
        n += 1
    os.replace(metrics, target)
    return target


def usable_last_checkpoint(run_dir: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """The newest readable ``**/checkpoints/last.ckpt`` under ``run_dir``, and a note, if any.

    An unreadable candidate (truncated by a full disk, corrupted, refused by the safe loader) is
    renamed to ``last.ckpt.unreadable`` (``-1``, ``-2`` ... if taken), so that no later rerun
    tries it again, and the next newest is tried; with none left the fold restarts from scratch
    (training is deterministic, so the result is the same as a resumed run's).

    Returns:
        ``(checkpoint or None, one line for the log or None)``.
    """
    from mpcl.checkpoints import CheckpointError, load_checkpoint

    notes: list[str] = []
    candidates = sorted(
        (p for p in Path(run_dir).glob(f"**/checkpoints/{LAST_NAME}") if p.is_file()),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    for path in candidates:
        try:
            load_checkpoint(path)
        except CheckpointError as error:
            n, target = 0, path.with_name(f"{LAST_NAME}.unreadable")
            while target.exists():
                n += 1
                target = path.with_name(f"{LAST_NAME}.unreadable-{n}")
            os.replace(path, target)
            notes.append(f"{error}; moved to {target.name}")
            continue
        return path, "; ".join(notes) or None
    if notes:
        notes.append("no readable last.ckpt left: the fold restarts from its first epoch")
    return None, "; ".join(notes) or None


def remove_stale_temporaries(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the hidden ``.NAME.ckpt.*.tmp`` files a killed checkpoint write left behind."""
    stale = [p for p in Path(checkpoint_dir).glob(".*.ckpt.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
