"""Safe file writing: results are written atomically and never silently overwritten."""

from __future__ import annotations

import os
from pathlib import Path

# One implementation of atomic writing, in the lowest layer (datamodules write split files too).
from datamodules.io import atomic_write, atomic_write_text

__all__ = ["atomic_write", "atomic_write_text", "unused_path"]


def unused_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if nothing is there yet, else the first free ``stem-1.suffix``, ``stem-2.suffix``...

    Used where a second run into the same folder must not replace the first one's results.
    """
    path = Path(path)
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
