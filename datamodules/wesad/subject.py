"""One subject's windows and features: load, window, extract, with the on-disk cache in front.

The cached part depends only on the signal pickle and the window settings; the labels come from
the questionnaire at every load, so changing the emotion items never recomputes features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.wesad.cache import cache_path, fingerprint, load_entry, save_entry, source_key
from datamodules.wesad.features import (
    FEATURE_NAMES,
    FEATURE_RATES,
    FEATURE_VERSION,
    extract_features,
    signal_lengths,
)
from datamodules.wesad.layout import pickle_path
from datamodules.wesad.safe_pickle import WESADFormatError, load_recording
from datamodules.wesad.windows import check_window_settings, find_segments, place_windows

log = logging.getLogger(__name__)

_BOOKKEEPING = ("start", "condition", "occurrence", "position")


@dataclass(frozen=True)
class SubjectWindows:
    """The windows of one subject and their features.

    Attributes:
        subject: The subject name.
        features: Modality -> float32 ``[W, F]``.
        start: Float64 ``[W]`` window start in seconds from the recording's start.
        condition: Int64 ``[W]`` condition code (1-4).
        occurrence: Int64 ``[W]`` round number among the rounds of the condition (time order).
        position: Int64 ``[W]`` order of the window within its round.
    """

    subject: str
    features: dict[str, np.ndarray]
    start: np.ndarray
    condition: np.ndarray
    occurrence: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def extract_subject(
    root: str | Path, subject: str, window_seconds: float, hop_seconds: float
) -> SubjectWindows:
    """Read ``root/SX/SX.pkl`` safely, place the windows and extract every feature."""
    path = pickle_path(root, subject)
    recording = load_recording(path)
    windows = place_windows(
        find_segments(recording.label), window_seconds, hop_seconds, signal_lengths(recording)
    )
    if len(windows) == 0:
        raise ValueError(
            f"{path}: no {window_seconds}-s window fits inside any study condition of 'label'"
        )
    return SubjectWindows(
        subject=subject,
        features=extract_features(recording, windows),
        start=windows.start,
        condition=windows.condition,
        occurrence=windows.occurrence,
        position=windows.position,
    )


def _consistent(cached: dict[str, np.ndarray], entry: Path) -> bool:
    """Whether a cache entry's arrays fit together: one row per window, finite features."""
    rows = {len(cached[key]) for key in _BOOKKEEPING}
    features = [cached[f"feature_{name}"] for name in FEATURE_NAMES]
    ok = (
        len(rows) == 1
        and all(f.ndim == 2 and len(f) in rows and np.isfinite(f).all() for f in features)
        and np.isin(cached["condition"], (1, 2, 3, 4)).all()
    )
    if not ok:
        log.warning("cache entry %s is inconsistent (rows, values); recomputing", entry)
    return bool(ok)


def load_subject(
    root: str | Path,
    subject: str,
    window_seconds: float = 5.0,
    hop_seconds: float = 1.0,
    cache_dir: str | Path | None = None,
) -> SubjectWindows:
    """A subject's windows and features, from the cache when an entry matches.

    Args:
        root: The WESAD folder holding ``SX/SX.pkl``.
        subject: The subject name (``"S2"``).
        window_seconds: Window length.
        hop_seconds: Step between windows.
        cache_dir: Folder of cached features; ``None`` computes without caching.

    Raises:
        WESADFormatError: If the subject's pickle is missing or malformed.
    """
    check_window_settings(window_seconds, hop_seconds, list(FEATURE_RATES))
    path = pickle_path(root, subject)
    if not path.is_file():
        raise WESADFormatError(f"{path}: signal file of subject {subject} not found")
    if cache_dir is None:
        return extract_subject(root, subject, window_seconds, hop_seconds)
    settings = {
        "version": FEATURE_VERSION,
        "window_seconds": window_seconds,
        "hop_seconds": hop_seconds,
        "features": FEATURE_NAMES,
    }
    entry = cache_path(cache_dir, subject, fingerprint(path, settings))
    source = source_key(path, settings)
    keys = tuple(f"feature_{name}" for name in FEATURE_NAMES) + _BOOKKEEPING
    cached = load_entry(entry, keys, expected_source=source)
    if cached is not None and not _consistent(cached, entry):
        cached = None
    if cached is not None:
        return SubjectWindows(
            subject=subject,
            features={name: cached[f"feature_{name}"] for name in FEATURE_NAMES},
            **{key: cached[key] for key in _BOOKKEEPING},
        )
    log.info("extracting WESAD features of %s (cached in %s)", subject, entry)
    result = extract_subject(root, subject, window_seconds, hop_seconds)
    try:
        save_entry(
            entry,
            {
                **{f"feature_{name}": values for name, values in result.features.items()},
                **{key: getattr(result, key) for key in _BOOKKEEPING},
            },
            source=source,
        )
    except OSError as error:
        log.warning("could not cache WESAD features of %s in %s (%s)", subject, entry, error)
    return result
