"""WESAD (Wearable Stress and Affect Detection) support: safe loading, windows, features, labels.

The public entry point is :class:`WESADDataModule`;
:func:`datamodules.wesad.fixtures.generate_fake_wesad` writes a small fake data set in the
release layout (``python -m datamodules.wesad.fixtures ROOT``).
"""

from datamodules.wesad.datamodule import WESADDataModule
from datamodules.wesad.features import FEATURE_NAMES, extract_features, modality_shapes
from datamodules.wesad.labels import round_distribution
from datamodules.wesad.layout import DEFAULT_ITEMS, SUBJECTS
from datamodules.wesad.quest import QuestFormatError, parse_quest
from datamodules.wesad.safe_pickle import (
    UnsafePickleError,
    WESADFormatError,
    load_recording,
    safe_load,
)
from datamodules.wesad.subject import load_subject

__all__ = [
    "DEFAULT_ITEMS",
    "FEATURE_NAMES",
    "SUBJECTS",
    "QuestFormatError",
    "UnsafePickleError",
    "WESADDataModule",
    "WESADFormatError",
    "extract_features",
    "load_recording",
    "load_subject",
    "modality_shapes",
    "parse_quest",
    "round_distribution",
    "safe_load",
]
