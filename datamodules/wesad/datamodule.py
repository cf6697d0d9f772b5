"""The WESAD datamodule: per-window features of every study condition with PANAS distributions.

Reads the UCI release (``root/SX/SX.pkl``, ``root/SX/SX_quest.csv``), cuts windows inside the
study conditions of the 700 Hz label array, extracts per-modality features (cached on disk) and
labels every window with its round's PANAS distribution. Rows of the table:

* ``subject``: the numeric subject id (2-17);
* ``trial``: the round (1 baseline, 2 stress, 3 amusement, 4 first meditation, 5 second
  meditation); rows of a trial share a target;
* ``category``: the condition (1-4; both meditation rounds are 4), the stratum of hold-outs;
* ``position``: the window's order within its round.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from datamodules.base import FeatureDataModule
from datamodules.data_size import DataSize
from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import ModalityMasking
from datamodules.protocols import DEFAULT_SEED
from datamodules.table import FeatureTable
from datamodules.wesad.features import (
    BEHAVIORAL,
    FEATURE_NAMES,
    FEATURE_RATES,
    PHYSIOLOGICAL,
    modality_shapes,
)
from datamodules.wesad.labels import resolve_items, subject_distributions, valence_groups
from datamodules.wesad.layout import (
    SUBJECTS,
    pickle_path,
    quest_path,
    subject_id,
)
from datamodules.wesad.quest import Questionnaire, parse_quest
from datamodules.wesad.safe_pickle import WESADFormatError
from datamodules.wesad.subject import SubjectWindows, load_subject
from datamodules.wesad.windows import check_window_settings, trial_id

log = logging.getLogger(__name__)


class WESADDataModule(FeatureDataModule):
    """WESAD windows as an emotion-distribution-learning data set.

    Physiological branch: ``ecg, eda_chest, emg, resp, temp_chest, bvp, eda_wrist, temp_wrist``;
    behavioral branch: ``acc_chest, acc_wrist`` (see :mod:`datamodules.wesad.features`).

    Args:
        root: Folder of the UCI download holding ``S2/S2.pkl``, ``S2/S2_quest.csv``, ...
        subjects: Subject names to load; default all 15 (S2-S11, S13-S17).
        window_seconds: Window length; a multiple of 0.25 s (whole samples at 4 Hz).
        hop_seconds: Step between window starts.
        items: PANAS items used as the emotion categories, in column order; default DMER's ten
            items with Annoyed in the place of Upset
            (:data:`~datamodules.wesad.layout.DEFAULT_ITEMS`).
        cache_dir: Folder of cached features; default ``<root>/.mpcl-cache``.
        protocol: Evaluation protocol (see :class:`~datamodules.base.FeatureDataModule`).
        fold: Fold of the protocol.
        num_folds: ``k`` of the ``kfold`` protocol.
        val_fraction: Fraction of the training part used for validation.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size; defaults to ``batch_size``.
        standardize: Standardise features with training-split statistics.
        subject_standardize: See :class:`~datamodules.base.FeatureDataModule`.
        split_seed: Seed of the protocol's random choices.
        shuffle_seed: Seed of the training-batch permutations.
        split_file: If set, the split is written to this JSON file at setup.
        masking: See :class:`~datamodules.base.FeatureDataModule`.
        data_size: See :class:`~datamodules.base.FeatureDataModule`.
    """

    #: Names of the ``category`` codes (the study conditions), for reports.
    category_names: ClassVar[dict[int, str]] = {
        1: "baseline",
        2: "stress",
        3: "amusement",
        4: "meditation",
    }

    def __init__(
        self,
        root: str = "data/wesad",
        subjects: list[str] | None = None,
        window_seconds: float = 5.0,
        hop_seconds: float = 1.0,
        items: list[str] | None = None,
        cache_dir: str | None = None,
        protocol: Literal["random-window", "temporal", "clip-holdout", "loso", "kfold"] = "loso",
        fold: int = 0,
        num_folds: int = 5,
        val_fraction: float = 0.1,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        standardize: bool = True,
        subject_standardize: bool = False,
        split_seed: int = DEFAULT_SEED,
        shuffle_seed: int = 0,
        split_file: str | None = None,
        masking: ModalityMasking | None = None,
        data_size: DataSize | None = None,
    ) -> None:
        super().__init__(
            protocol=protocol,
            fold=fold,
            num_folds=num_folds,
            val_fraction=val_fraction,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            standardize=standardize,
            subject_standardize=subject_standardize,
            split_seed=split_seed,
            shuffle_seed=shuffle_seed,
            split_file=split_file,
            masking=masking,
            data_size=data_size,
        )
        self.subjects = tuple(SUBJECTS if subjects is None else subjects)
        if not self.subjects or len(set(self.subjects)) != len(self.subjects):
            raise ValueError(f"subjects must be distinct and non-empty, got {list(self.subjects)}")
        for subject in self.subjects:
            subject_id(subject)
        check_window_settings(window_seconds, hop_seconds, list(FEATURE_RATES))
        self.root = Path(root)
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.items = resolve_items(items)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / ".mpcl-cache"

    @property
    def metadata(self) -> DatasetMetadata:
        """Emotions, feature shapes and branches; computed without reading data."""
        return DatasetMetadata(
            emotion_names=self.items,
            valence_groups=valence_groups(self.items),
            modality_shapes=modality_shapes(),
            physiological=PHYSIOLOGICAL,
            behavioral=BEHAVIORAL,
            name="wesad",
            extra={
                "window_seconds": self.window_seconds,
                "hop_seconds": self.hop_seconds,
                "feature_names": {k: list(v) for k, v in FEATURE_NAMES.items()},
            },
        )

    def subject_ids(self) -> list[int]:
        """The numeric ids of the configured subjects, sorted (no data is read)."""
        return sorted(subject_id(s) for s in self.subjects)

    def _check_files(self) -> None:
        missing = [
            str(path)
            for subject in self.subjects
            for path in (pickle_path(self.root, subject), quest_path(self.root, subject))
            if not path.is_file()
        ]
        if missing:
            found = sorted(p.name for p in self.root.glob("S*") if p.is_dir())
            raise WESADFormatError(
                f"{self.root}: missing WESAD files {missing}; expected root/SX/SX.pkl and "
                f"root/SX/SX_quest.csv per subject (subject folders found: {found}); to use "
                "only some subjects, set subjects (e.g. --data.subjects '[S2,S3]')"
            )

    def _subject_table(
        self,
        windows: SubjectWindows,
        quest: Questionnaire,
        distributions: dict[tuple[int, int], np.ndarray],
    ) -> FeatureTable:
        subject = windows.subject
        rounds = sorted(
            set(zip(windows.condition.tolist(), windows.occurrence.tolist(), strict=True))
        )
        for quest_round in quest.rounds:
            if (quest_round.condition, quest_round.occurrence) not in rounds:
                log.warning(
                    "%s: round %r has ratings but no window in the label array",
                    subject,
                    quest_round.name,
                )
        # One target and trial id per round, gathered to the rows by the round's index.
        key = windows.condition * 100 + windows.occurrence
        round_keys = np.array([c * 100 + o for c, o in rounds])
        index = np.searchsorted(round_keys, key)
        # round_of raises, naming the subject, for a label round without questionnaire ratings.
        targets = np.stack([distributions[quest.round_of(c, o).key] for c, o in rounds])
        trials = np.array([trial_id(c, o) for c, o in rounds], dtype=np.int64)
        n = len(windows)
        return FeatureTable(
            features={
                k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in windows.features.items()
            },
            target=torch.from_numpy(targets[index].astype(np.float32)),
            subject=torch.full((n,), subject_id(subject), dtype=torch.int64),
            trial=torch.from_numpy(trials[index]),
            category=torch.from_numpy(windows.condition.astype(np.int64)),
            position=torch.from_numpy(windows.position.astype(np.int64)),
        )

    def load_table(self) -> FeatureTable:
        """Windows, features and targets of every configured subject, in subject order."""
        self._check_files()
        subjects = sorted(self.subjects, key=subject_id)
        # Questionnaires first: a malformed one fails in milliseconds, not after extraction.
        quests = {s: parse_quest(quest_path(self.root, s), s) for s in subjects}
        distributions = subject_distributions(quests, self.items)
        tables = []
        for subject in subjects:
            windows = load_subject(
                self.root, subject, self.window_seconds, self.hop_seconds, self.cache_dir
            )
            tables.append(self._subject_table(windows, quests[subject], distributions[subject]))
        return FeatureTable.concat(tables)
