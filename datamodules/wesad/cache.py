"""On-disk cache of per-subject WESAD features, keyed by a fingerprint of what they depend on.

Feature extraction reads a ~1 GB pickle and filters every signal, so its result is stored as
``<cache_dir>/<subject>-<fingerprint>.npz``. The fingerprint hashes the extraction settings, the
feature code version and the pickle's path, size and modification time: a changed setting or a
replaced file gets a new entry, a second run with the same inputs loads the stored arrays.
Entries are written to a temporary file and renamed into place, so an interrupted run never
leaves a truncated entry behind, and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


#: Array of an entry that holds the full key (settings and source identity) it was made from.
SOURCE_KEY = "cache_source_key"


def source_key(source: str | Path, settings: Mapping[str, Any]) -> str:
    """The JSON text of ``settings`` and the identity (path, size, mtime) of ``source``."""
    stat = Path(source).stat()
    key = {
        "settings": dict(settings),
        "source": str(Path(source).resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    return json.dumps(key, sort_keys=True, default=str)


def fingerprint(source: str | Path, settings: Mapping[str, Any]) -> str:
    """A short hash of :func:`source_key`: the entry's file-name key."""
    return hashlib.sha256(source_key(source, settings).encode()).hexdigest()[:20]


def cache_path(cache_dir: str | Path, name: str, key: str) -> Path:
    """Where the entry ``name`` with fingerprint ``key`` lives."""
    return Path(cache_dir) / f"{name}-{key}.npz"


def load_entry(
    path: Path, keys: tuple[str, ...], expected_source: str | None = None
) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or ``None`` if it is absent, unreadable or incomplete.

    With ``expected_source`` (a :func:`source_key`), an entry made from another source or with
    other settings (a copied or renamed file, a hash collision) is not used either.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if expected_source is not None and (
                SOURCE_KEY not in data.files or str(data[SOURCE_KEY]) != expected_source
            ):
                log.warning("cache entry %s was made from another source; recomputing", path)
                return None
            if not set(keys) <= set(data.files):
                log.warning(
                    "cache entry %s lacks arrays %s; recomputing", path, set(keys) - set(data.files)
                )
                return None
            return {key: data[key] for key in data.files if key != SOURCE_KEY}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        log.warning("cache entry %s is unreadable (%s); recomputing", path, error)
        return None


def save_entry(path: Path, arrays: Mapping[str, np.ndarray], source: str | None = None) -> None:
    """Write arrays (and the ``source`` key) atomically: a temporary file, then rename."""
    if source is not None:
        arrays = {**arrays, SOURCE_KEY: np.array(source)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as file:
            np.savez(file, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
