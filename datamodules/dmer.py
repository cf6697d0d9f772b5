"""DMER (Yang et al., Scientific Data 2024) in its per-subject feature-file format.

One MATLAB file per participant, ``<root>/<subject_id>.mat``, holding

* ``feas`` (N x 913): one row per 1-s step of a clip; columns 0-89 EEG differential entropy
  (18 channels x 5 bands, channel-major), 90-117 GSR statistics, 118-144 PPG statistics,
  145-912 face LBP-TOP histograms (XY, XT, YT planes x 256 bins);
* ``vids`` (N x 1): the clip id (0-31) of each row; clips 0-7 are positive, 8-15 negative,
  16-31 mixed;
* ``dis_label`` (32 x 10): the 10 PANAS item ratings (1-5) of every clip. The target of a row is
  ``dis_label[vid] / sum(dis_label[vid])``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from datamodules.base import FeatureDataModule
from datamodules.data_size import DataSize
from datamodules.io import DataFormatError, read_mat_variables
from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import ModalityMasking
from datamodules.protocols import DEFAULT_SEED
from datamodules.table import FeatureTable

#: The 73 participants with valid data: 1..80 except 3, 4, 13, 16, 17, 27, 31.
DMER_VALID_SUBJECTS: tuple[int, ...] = tuple(
    i for i in range(1, 81) if i not in {3, 4, 13, 16, 17, 27, 31}
)
#: The short-form PANAS items, in the column order of ``dis_label``.
DMER_EMOTIONS: tuple[str, ...] = (
    "Inspired",
    "Alert",
    "Excited",
    "Enthusiastic",
    "Determined",
    "Afraid",
    "Upset",
    "Nervous",
    "Scared",
    "Distressed",
)
DMER_VALENCE_GROUPS: tuple[int, ...] = (0,) * 5 + (1,) * 5
NUM_CLIPS = 32
NUM_FEATURES = 913
#: Per modality: first column, end column (exclusive) of ``feas`` and the per-row shape.
DMER_COLUMNS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "eeg": (0, 90, (18, 5)),
    "gsr": (90, 118, (28,)),
    "ppg": (118, 145, (27,)),
    "face": (145, 913, (768,)),
}
DMER_PHYSIOLOGICAL = ("eeg", "gsr", "ppg")
DMER_BEHAVIORAL = ("face",)


def clip_category(vids: np.ndarray) -> np.ndarray:
    """Category of DMER clip ids: 0 positive (0-7), 1 negative (8-15), 2 mixed (16-31)."""
    return np.searchsorted(np.array([8, 16]), np.asarray(vids), side="right").astype(np.int64)


def dmer_metadata(name: str = "dmer", modalities: Sequence[str] | None = None) -> DatasetMetadata:
    """The metadata of the DMER feature format, optionally restricted to some modalities."""
    metadata = DatasetMetadata(
        emotion_names=DMER_EMOTIONS,
        valence_groups=DMER_VALENCE_GROUPS,
        modality_shapes={k: shape for k, (_, _, shape) in DMER_COLUMNS.items()},
        physiological=DMER_PHYSIOLOGICAL,
        behavioral=DMER_BEHAVIORAL,
        name=name,
    )
    if modalities is None:
        return metadata
    unknown = sorted(set(modalities) - set(DMER_COLUMNS))
    if unknown or not modalities:
        raise ValueError(
            f"modalities must be a non-empty subset of {list(DMER_COLUMNS)}, got {list(modalities)}"
        )
    return metadata.restricted_to(modalities)


def _vids_column(path: Path, vids: np.ndarray) -> np.ndarray:
    if vids.ndim > 2 or (vids.ndim == 2 and 1 not in vids.shape):
        raise DataFormatError(f"{path}: field 'vids' has shape {vids.shape}, expected N x 1")
    vids = vids.reshape(-1)
    if not np.issubdtype(vids.dtype, np.number) or np.iscomplexobj(vids):
        raise DataFormatError(f"{path}: field 'vids' has dtype {vids.dtype}, expected integers")
    if not np.all(np.isfinite(vids)) or np.any(vids != np.round(vids)):
        raise DataFormatError(f"{path}: field 'vids' holds non-integer values, expected 0..31")
    bad = (vids < 0) | (vids >= NUM_CLIPS)
    if bad.any():
        ids = np.unique(vids[bad]).astype(np.int64).tolist()[:10]
        raise DataFormatError(
            f"{path}: field 'vids' holds clip ids {ids} outside 0..{NUM_CLIPS - 1} "
            f"(first at row {int(np.argmax(bad))})"
        )
    return vids.astype(np.int64)


def _missing_blocks(feas: np.ndarray, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """Per modality, the rows whose block of columns is entirely NaN (``nan_as_missing``)."""
    missing = {}
    for name in modalities:
        first, end, _ = DMER_COLUMNS[name]
        rows = np.isnan(feas[:, first:end]).all(axis=1)
        if rows.any():
            missing[name] = rows
    return missing


def _check_feas(path: Path, feas: np.ndarray, ignore: np.ndarray | None = None) -> None:
    if feas.ndim != 2 or feas.shape[1] != NUM_FEATURES:
        raise DataFormatError(
            f"{path}: field 'feas' has shape {feas.shape}, expected N x {NUM_FEATURES} columns"
        )
    if not np.issubdtype(feas.dtype, np.number) or np.iscomplexobj(feas):
        raise DataFormatError(f"{path}: field 'feas' has dtype {feas.dtype}, expected real numbers")
    if feas.shape[0] == 0:
        raise DataFormatError(f"{path}: field 'feas' has no rows")
    finite = np.isfinite(feas)
    if ignore is not None:
        finite = finite | ignore
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise DataFormatError(
            f"{path}: field 'feas' holds {int((~finite).sum())} NaN/inf values "
            f"(first at row {row}, column {column}); expected finite features"
        )


def _check_cast(path: Path, block: np.ndarray, first_column: int) -> None:
    """Refuse features that are finite in the file but not in float32 (``|x| > 3.4e38``)."""
    finite = np.isfinite(block)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise DataFormatError(
            f"{path}: field 'feas' holds {int((~finite).sum())} values outside the float32 "
            f"range (first at row {row}, column {first_column + column}); expected features "
            "with |x| < 3.4e38"
        )


def _check_labels(path: Path, labels: np.ndarray, num_emotions: int) -> None:
    if labels.shape != (NUM_CLIPS, num_emotions):
        raise DataFormatError(
            f"{path}: field 'dis_label' has shape {labels.shape}, "
            f"expected {NUM_CLIPS} x {num_emotions} (clips x PANAS items)"
        )
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)):
        raise DataFormatError(f"{path}: field 'dis_label' must hold finite real ratings")
    with np.errstate(over="ignore"):
        sums = labels.sum(axis=1)
    overflow = np.flatnonzero(~np.isfinite(sums))
    if len(overflow):
        raise DataFormatError(
            f"{path}: field 'dis_label' rows (clips) {overflow.tolist()} overflow when summed; "
            "expected ratings on the PANAS scale (1-5)"
        )
    negative = np.flatnonzero((labels < 0).any(axis=1))
    if len(negative):
        raise DataFormatError(
            f"{path}: field 'dis_label' has negative ratings in rows (clips) {negative.tolist()}"
        )
    empty = np.flatnonzero(labels.sum(axis=1) <= 0)
    if len(empty):
        raise DataFormatError(
            f"{path}: field 'dis_label' rows (clips) {empty.tolist()} sum to zero; "
            "a row must sum to a positive value to be normalised into a distribution"
        )


def load_dmer_file(
    path: str | os.PathLike[str],
    subject: int,
    modalities: Sequence[str] | None = None,
    prediction: bool = False,
    nan_as_missing: bool = False,
) -> FeatureTable:
    """Read and validate one DMER feature file.

    Args:
        path: ``<root>/<subject_id>.mat`` (MATLAB v5/v7 or v7.3).
        subject: The subject id stored in the table's ``subject`` column.
        modalities: Modalities to keep (default all four).
        prediction: A file to predict: ``dis_label`` may be absent (targets are then NaN; one
            that is present is still checked) and clips may have no rows.
        nan_as_missing: A modality block that is entirely NaN in a row marks that modality as
            missing in that row (``FeatureTable.present``; values set to 0) instead of being an
            error. A block with only some NaN values is still an error.

    Returns:
        The subject's rows, in file order. ``position`` counts the rows of each clip in file
        order; ``category`` is the clip's category (see :func:`clip_category`).

    Raises:
        DataFormatError: Missing or unreadable file, missing field, wrong shapes, non-finite
            features, clip ids outside 0..31, a clip without rows, or a label row that is
            negative or sums to zero. The message names the file and the field.
    """
    path = Path(path)
    data = read_mat_variables(path, ("feas", "vids", "dis_label"))
    required = ("feas", "vids") if prediction else ("feas", "vids", "dis_label")
    missing = [k for k in required if k not in data]
    if missing:
        raise DataFormatError(f"{path}: missing field(s) {missing}; expected feas, vids, dis_label")
    feas = data["feas"]
    keep = list(DMER_COLUMNS) if modalities is None else list(modalities)
    missing_rows: dict[str, np.ndarray] = {}
    ignore = None
    if nan_as_missing and np.issubdtype(np.asarray(feas).dtype, np.number) and feas.ndim == 2:
        if feas.shape[1] == NUM_FEATURES:
            missing_rows = _missing_blocks(feas, keep)
            ignore = np.zeros(feas.shape, dtype=bool)
            for name, rows in missing_rows.items():
                first, end, _ = DMER_COLUMNS[name]
                ignore[rows, first:end] = True
    _check_feas(path, feas, ignore)
    vids = _vids_column(path, data["vids"])
    if len(vids) != len(feas):
        raise DataFormatError(
            f"{path}: field 'vids' has {len(vids)} rows but 'feas' has {len(feas)}; "
            "expected one clip id per feature row"
        )
    counts = np.bincount(vids, minlength=NUM_CLIPS)
    if not prediction and (counts == 0).any():
        raise DataFormatError(
            f"{path}: clips {np.flatnonzero(counts == 0).tolist()} have no rows in 'vids'; "
            f"expected rows for all {NUM_CLIPS} clips"
        )
    if "dis_label" in data:
        raw = np.asarray(data["dis_label"])
        if np.iscomplexobj(raw) or not np.issubdtype(raw.dtype, np.number):
            # A complex array would lose its imaginary part in the float conversion below.
            raise DataFormatError(
                f"{path}: field 'dis_label' has dtype {raw.dtype}, expected real ratings"
            )
        labels = raw.astype(np.float64)
        _check_labels(path, labels, len(DMER_EMOTIONS))
    else:
        labels = np.full((NUM_CLIPS, len(DMER_EMOTIONS)), np.nan)

    # Position of each row within its clip, in file order: rank in a stable sort by clip.
    order = np.argsort(vids, kind="stable")
    starts = np.cumsum(counts) - counts
    position = np.empty(len(vids), dtype=np.int64)
    position[order] = np.arange(len(vids)) - starts[vids[order]]

    features = {}
    for name in keep:
        first, end, shape = DMER_COLUMNS[name]
        block = np.ascontiguousarray(feas[:, first:end], dtype=np.float32)
        if name in missing_rows:
            block[missing_rows[name]] = 0.0
        _check_cast(path, block, first)
        features[name] = torch.from_numpy(block).reshape(len(feas), *shape)
    present = {name: torch.from_numpy(~rows) for name, rows in missing_rows.items()}
    target = labels / labels.sum(axis=1, keepdims=True)  # NaN rows stay NaN (no labels)
    return FeatureTable(
        features=features,
        target=torch.from_numpy(target[vids].astype(np.float32)),
        subject=torch.full((len(vids),), int(subject), dtype=torch.int64),
        trial=torch.from_numpy(vids),
        category=torch.from_numpy(clip_category(vids)),
        position=torch.from_numpy(position),
        present=present,
    )


class DMERDataModule(FeatureDataModule):
    """DMER feature files -> protocol splits -> standardised in-memory batches.

    Batches carry ``eeg`` ``[B, 18, 5]``, ``gsr`` ``[B, 28]``, ``ppg`` ``[B, 27]``, ``face``
    ``[B, 768]`` (or the chosen subset), ``target`` ``[B, 10]``, ``subject``, ``trial`` (clip id)
    and ``index``.

    Args:
        root: Folder holding ``<subject_id>.mat`` per subject.
        subjects: Subject ids to load (default: the 73 valid DMER participants).
        modalities: Modalities to load (default all: ``eeg``, ``gsr``, ``ppg``, ``face``).
        protocol: See :class:`~datamodules.base.FeatureDataModule`.
        fold: See :class:`~datamodules.base.FeatureDataModule`.
        num_folds: See :class:`~datamodules.base.FeatureDataModule`.
        val_fraction: See :class:`~datamodules.base.FeatureDataModule`.
        batch_size: See :class:`~datamodules.base.FeatureDataModule`.
        eval_batch_size: See :class:`~datamodules.base.FeatureDataModule`.
        standardize: See :class:`~datamodules.base.FeatureDataModule`.
        subject_standardize: See :class:`~datamodules.base.FeatureDataModule`.
        split_seed: See :class:`~datamodules.base.FeatureDataModule`.
        shuffle_seed: See :class:`~datamodules.base.FeatureDataModule`.
        split_file: See :class:`~datamodules.base.FeatureDataModule`.
        masking: See :class:`~datamodules.base.FeatureDataModule`.
        data_size: See :class:`~datamodules.base.FeatureDataModule`.
        predict_root: Folder of feature files to predict (``mpcl predict``): every
            ``<subject_id>.mat`` in it, all rows, standardised with the training statistics
            (restored from the checkpoint); ``dis_label`` may be absent there.
        split_rng: See :class:`~datamodules.base.FeatureDataModule`.
        validate_on_test: See :class:`~datamodules.base.FeatureDataModule`.
        scoring: See :class:`~datamodules.base.FeatureDataModule`.
    """

    dataset_name = "dmer"
    #: Names of the ``category`` codes of the rows (see :func:`clip_category`), for reports.
    category_names: ClassVar[dict[int, str]] = {
        0: "positive clip",
        1: "negative clip",
        2: "mixed clip",
    }

    def __init__(
        self,
        root: str,
        subjects: list[int] | None = None,
        modalities: list[str] | None = None,
        protocol: Literal["random-window", "temporal", "clip-holdout", "loso", "kfold"] = "kfold",
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
        predict_root: str | None = None,
        masking: ModalityMasking | None = None,
        data_size: DataSize | None = None,
        split_rng: Literal["numpy", "torch"] = "numpy",
        validate_on_test: bool = False,
        scoring: Literal["all", "first-per-batch"] = "all",
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
            split_rng=split_rng,
            validate_on_test=validate_on_test,
            scoring=scoring,
        )
        ids = list(DMER_VALID_SUBJECTS) if subjects is None else [int(s) for s in subjects]
        if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
            raise ValueError(f"subjects must be distinct non-negative ids, got {subjects}")
        self.root = root
        self.predict_root = predict_root
        self.subjects = sorted(ids)
        self._metadata = dmer_metadata(self.dataset_name, modalities)

    @property
    def metadata(self) -> DatasetMetadata:
        """DMER's 10 PANAS emotions, modality shapes and branches (no file is read)."""
        return self._metadata

    def subject_ids(self) -> list[int]:
        """The configured subject ids (no file is read)."""
        return list(self.subjects)

    def subject_path(self, subject: int) -> Path:
        """The feature file of ``subject``."""
        return Path(self.root) / f"{subject}.mat"

    def table_source_key(self) -> Hashable | None:
        """The class, subjects, modalities and each file's path, size and modification time.

        ``None`` while a file is missing, so that :meth:`load_table` reports it.
        """
        files = []
        for subject in self.subjects:
            path = self.subject_path(subject)
            try:
                stat = path.stat()
            except OSError:
                return None
            files.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
        nan_as_missing = self.masking is not None and self.masking.nan_as_missing
        return (
            type(self).__qualname__,
            tuple(self.metadata.modalities),
            tuple(files),
            nan_as_missing,
        )

    def load_table(self) -> FeatureTable:
        """Read every subject's file and concatenate them once."""
        root = Path(self.root)
        if not root.is_dir():
            raise DataFormatError(f"{root}: DMER feature folder not found")
        missing = [
            str(self.subject_path(s)) for s in self.subjects if not self.subject_path(s).is_file()
        ]
        if missing:
            raise DataFormatError(
                f"missing DMER feature file(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}: "
                f"expected <root>/<subject_id>.mat for each of {len(self.subjects)} subjects "
                f"({len(missing)} missing); to use the files that are there, pass their ids, "
                "e.g. --data.subjects '[1, 2, 5]'"
            )
        modalities = self.metadata.modalities
        nan_as_missing = self.masking is not None and self.masking.nan_as_missing
        tables = [
            load_dmer_file(self.subject_path(s), s, modalities, False, nan_as_missing)
            for s in self.subjects
        ]
        return FeatureTable.concat(tables)

    def has_predict_source(self) -> bool:
        """Whether ``predict_root`` is set."""
        return self.predict_root is not None

    def predict_files(self) -> list[tuple[int, Path]]:
        """``(subject id, path)`` of every ``<subject_id>.mat`` in ``predict_root``, by id."""
        root = Path(str(self.predict_root))
        if not root.is_dir():
            raise DataFormatError(f"{root}: predict_root folder not found")
        files = []
        seen: dict[int, Path] = {}
        for path in sorted(root.glob("*.mat")):
            # ASCII digits only: str.isdigit and int() also accept other scripts' digits.
            if re.fullmatch(r"[0-9]+", path.stem) is None:
                raise DataFormatError(
                    f"{path}: predict_root files must be named <subject_id>.mat (an integer id "
                    "in ASCII digits)"
                )
            subject = int(path.stem)
            if subject in seen:
                raise DataFormatError(
                    f"{path}: subject id {subject} is also the id of {seen[subject]}; "
                    "expected one file per subject"
                )
            seen[subject] = path
            files.append((subject, path))
        if not files:
            raise DataFormatError(f"{root}: predict_root holds no <subject_id>.mat feature file")
        return sorted(files)

    def load_predict_table(self) -> FeatureTable:
        """All rows of every file in ``predict_root``, in (subject id, file row) order."""
        modalities = self.metadata.modalities
        return FeatureTable.concat(
            [load_dmer_file(p, s, modalities, prediction=True) for s, p in self.predict_files()]
        )
