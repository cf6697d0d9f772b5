"""The datamodule base class: feature table -> protocol split -> standardisation -> batches.

A concrete data set implements two things: :attr:`FeatureDataModule.metadata` (available right
after ``__init__``, without reading any file, because LightningCLI links it into the model at
instantiation) and :meth:`FeatureDataModule.load_table`. Everything else - splitting by protocol
and fold, standardising with training statistics, recording the split, and serving in-memory
batches that shard exactly across distributed ranks - lives here.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor

from datamodules.batches import InMemoryBatches
from datamodules.checkpoint_state import check_checkpoint_state, check_statistics, layout_of
from datamodules.data_size import DataSize, subsample_training_rows
from datamodules.io import atomic_write_text
from datamodules.metadata import DatasetMetadata
from datamodules.modality_mask import (
    ModalityDropoutMixin,
    ModalityMasking,
    apply_masking,
    masking_report,
)
from datamodules.protocols import (
    DEFAULT_SEED,
    Split,
    SplitRNG,
    check_protocol,
    describe_split,
    num_folds,
    split_table,
    write_split_file,
)
from datamodules.scoring import SCORED_KEY, SCORINGS, Scoring, first_per_batch
from datamodules.subject_norm import standardize_per_subject
from datamodules.table import FeatureTable
from datamodules.table_cache import load_shared

#: Features whose training standard deviation is below this are only centred, not scaled:
#: dividing by a near-zero std would blow up any test row that differs from the constant.
MIN_STD = 1e-6


class LightningInMemoryBatches(InMemoryBatches):
    """:class:`InMemoryBatches` as Lightning's loops inspect it.

    Lightning 2.6 asks every evaluation loader that has a ``sampler`` attribute for its
    ``batch_sampler`` too (to warn about shuffled evaluation); ``None`` makes it look at
    ``sampler`` (the batches object itself) and conclude "not shuffled". This belongs in
    :class:`InMemoryBatches` itself; until then it lives here.
    """

    batch_sampler = None


class ModalityDropoutBatches(ModalityDropoutMixin, LightningInMemoryBatches):
    """Training batches with modality dropout (see :class:`ModalityMasking`)."""


class FeatureDataModule(LightningDataModule, ABC):
    """Base class of the in-memory feature datamodules.

    Batches are dicts of tensors with one key per modality (``[B, *shape]`` float32) plus
    ``target`` (``[B, C]``), ``subject``, ``trial`` and ``index`` (the row id in :attr:`table`).

    Args:
        protocol: Evaluation protocol: subject-dependent ``random-window``, ``temporal``,
            ``clip-holdout`` (fold ``i`` = the ``i``-th subject, one model per subject) or
            subject-independent ``loso``, ``kfold`` (see :mod:`datamodules.protocols`).
        fold: Which fold of the protocol to train / evaluate, from 0.
        num_folds: ``k`` of the ``kfold`` protocol (ignored by the others).
        val_fraction: Fraction of the training part moved to validation, in ``[0, 1)``;
            0 disables validation.
        batch_size: Training batch size (per process).
        eval_batch_size: Validation / test / predict batch size; defaults to ``batch_size``.
        standardize: Standardise every feature with the mean and standard deviation of the
            training rows (``x' = (x - mean_train) / std_train``).
        subject_standardize: First z-score every subject's rows with that subject's own
            feature statistics (:func:`~datamodules.subject_norm.standardize_per_subject`),
            test and prediction subjects included. Label-free but transductive over each
            subject's rows; off by default.
        split_seed: Seed of the protocol's random choices (3407, HeLo's, by default).
        shuffle_seed: Seed of the training-batch permutations (epoch ``e`` uses ``seed + e``).
        split_file: If set, the split (subjects, trials and row ids of every part) is written
            to this JSON file at setup.
        masking: Missing and noisy modalities (:class:`~datamodules.modality_mask.ModalityMasking`,
            ``--data.masking.*``); ``None``: every modality of every window, untouched. What was
            applied is written to ``masking.json`` in the run folder.
        data_size: Train on part of the training split only (fewer subjects or windows per
            clip, :class:`~datamodules.data_size.DataSize`); validation and test are unchanged.
        split_rng: Random generator of ``random-window``: ``numpy`` (default) or ``torch`` (the
            released HeLo code's ``random_split`` rows and order; see
            :mod:`datamodules.protocols`).
        validate_on_test: Serve the test rows as the validation split, so that the checkpoint
            (and early stopping) is chosen on test: the released HeLo code's protocol, for
            measuring its inflation only. Needs ``val_fraction=0``.
        scoring: ``all`` evaluation rows, or ``first-per-batch`` (the released HeLo code's
            scoring; see :mod:`datamodules.scoring`).
    """

    def __init__(
        self,
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
        masking: ModalityMasking | None = None,
        data_size: DataSize | None = None,
        split_rng: SplitRNG = "numpy",
        validate_on_test: bool = False,
        scoring: Scoring = "all",
    ) -> None:
        super().__init__()
        check_protocol(protocol)
        if fold < 0:
            raise ValueError(f"fold must be >= 0, got {fold}")
        if num_folds < 2:
            raise ValueError(f"num_folds must be >= 2, got {num_folds}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        for name, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size is not None and size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size}")
        self.protocol = protocol
        self.fold = fold
        self.num_folds = num_folds
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.standardize = standardize
        self.subject_standardize = subject_standardize
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.split_file = split_file
        self.masking = masking
        self.data_size = data_size
        if validate_on_test and val_fraction > 0:
            raise ValueError(
                f"validate_on_test=True serves the test rows as validation; set val_fraction=0 "
                f"(got {val_fraction}) so that no training rows are held out for nothing"
            )
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {scoring!r}")
        self.split_rng = split_rng
        self.validate_on_test = validate_on_test
        self.scoring = scoring
        # Unpadded evaluation sharding can leave a rank without rows when a split is tiny.
        self.allow_zero_length_dataloader_with_multiple_devices = True
        # The table as loaded (per-subject z-scored when enabled); standardised only on demand.
        self._table: FeatureTable | None = None
        self._standardized_table: FeatureTable | None = None
        # The statistics that standardised the split tables at setup(); a checkpoint restored
        # later replaces _statistics (for prediction rows) but not what the splits were built with.
        self._setup_statistics: dict[str, tuple[Tensor, Tensor]] = {}
        self.splits: dict[str, Tensor] = {}
        self.feature_mean: dict[str, Tensor] = {}
        self.feature_std: dict[str, Tensor] = {}
        # float64 (mean, std) per modality: what standardised the training rows, kept exactly so
        # that prediction rows are standardised bit for bit alike (and saved in checkpoints).
        self._statistics: dict[str, tuple[Tensor, Tensor]] = {}
        self._split_tables: dict[str, dict[str, Tensor]] = {}
        # The split tables on the trainer's device, copied there once (see _device_table).
        self._device_tables: dict[str, dict[str, Tensor]] = {}

    @property
    @abstractmethod
    def metadata(self) -> DatasetMetadata:
        """Shapes, emotions and branches of the data; must not read any data file."""

    @abstractmethod
    def load_table(self) -> FeatureTable:
        """Read the whole data set into one table (called once, by :meth:`setup`)."""

    def table_source_key(self) -> Hashable | None:
        """What identifies the table :meth:`load_table` returns, or ``None`` (the default).

        Inside :func:`~datamodules.table_cache.shared_tables` (the protocol runner's folds), a
        datamodule with the key of a table loaded earlier reuses that table. A key must change
        whenever the table would: the files read, their sizes and modification times, and every
        setting that shapes the table (subjects, modalities, windowing).
        """
        return None

    @property
    def table(self) -> FeatureTable:
        """The (standardised, when enabled) feature table; available after :meth:`setup`.

        Standardised at the first access, with the statistics the splits were built with: the
        loaders never need it (see :meth:`setup`).
        """
        if self._table is None:
            raise RuntimeError(f"{type(self).__name__}.table is available only after setup()")
        if self._standardized_table is None:
            self._standardized_table = self._apply_statistics(self._table, self._setup_statistics)
        return self._standardized_table

    def subject_ids(self) -> list[int]:
        """The subject ids of the data set (sorted); subclasses may answer without loading."""
        if self._table is None:
            self.setup()
        return self._table.subjects

    @property
    def fold_count(self) -> int:
        """Number of folds of the configured protocol (``num_folds`` for kfold, else subjects)."""
        return num_folds(self.protocol, self.subject_ids(), self.num_folds)

    def setup(self, stage: str | None = None) -> None:
        """Load the table once, split it and build the standardised per-split batch tables.

        Only the rows of the fold's splits are standardised: a subject-dependent fold uses one
        subject's rows, and standardising every subject's rows for each of the 73 folds of a DMER
        protocol cost more than training the fold. Standardisation is elementwise, so a split's
        values equal those of the standardised whole table (:attr:`table`) bit for bit.

        Idempotent: Lightning calls it for every stage; the work is done at the first call.
        For ``predict`` with a prediction source (:meth:`has_predict_source`) nothing is read
        here: the prediction rows are prepared by :meth:`predict_dataloader`, after Lightning has
        restored the checkpoint's standardisation statistics.
        """
        if self._table is not None or (stage == "predict" and self.has_predict_source()):
            return
        if self.masking is not None:
            self.masking.check_modalities(self.metadata.modalities)
        table = load_shared(self.table_source_key, self.load_table)
        self._check_table(table)
        if self.subject_standardize:
            table = standardize_per_subject(table, MIN_STD)
        split = split_table(
            table,
            self.protocol,
            self.fold,
            k=self.num_folds,
            val_fraction=self.val_fraction,
            seed=self.split_seed,
            split_rng=self.split_rng,
        )
        if self.data_size is not None:
            kept = subsample_training_rows(split.train, table.subject, table.trial, self.data_size)
            split = dataclasses.replace(split, train=kept)
        if self.validate_on_test:
            split = dataclasses.replace(split, val=split.test)
        if len(split.train) == 0:
            raise ValueError(
                f"{type(self).__name__}: fold {self.fold} of {self.protocol} has no training rows"
            )
        if self.standardize:
            self._fit_statistics(table, split.train)
        self._setup_statistics = dict(self._statistics)
        self._table, self._standardized_table = table, None
        self.splits = split.as_dict()
        statistics = self._setup_statistics
        self._split_tables = {
            name: self._apply_statistics(table.select(rows), statistics).as_batch_table(rows)
            for name, rows in self.splits.items()
        }
        if self.masking is not None and self.masking.changes_splits:
            modalities = self.metadata.modalities
            self._split_tables = {
                name: apply_masking(rows, modalities, self.masking, name)
                for name, rows in self._split_tables.items()
            }
        if self.scoring == "first-per-batch":
            for name in ("val", "test"):
                rows = len(self.splits[name])
                self._split_tables[name][SCORED_KEY] = first_per_batch(rows, self.eval_batch_size)
        self._device_tables = {}
        if self.split_file and self._is_global_zero():
            self.write_split(self.split_file, split)
        self._write_masking_report()

    def _write_masking_report(self) -> None:
        """``masking.json`` in the run folder: the settings and the missing windows per split."""
        log_dir = getattr(self.trainer, "log_dir", None) if self.trainer is not None else None
        if self.masking is None or not log_dir or not self._is_global_zero():
            return
        report = masking_report(self.masking, self._split_tables, self.metadata.modalities)
        atomic_write_text(Path(log_dir) / "masking.json", json.dumps(report, indent=2) + "\n")

    def write_split(self, path: str, split: Split | None = None) -> None:
        """Write the split description (see :func:`~datamodules.protocols.describe_split`)."""
        split = split or Split(**self.splits)
        description = describe_split(
            self._table,
            split,
            protocol=self.protocol,
            fold=self.fold,
            seed=self.split_seed,
            num_folds=self.fold_count,
            val_fraction=self.val_fraction,
            dataset=self.metadata.name,
        )
        write_split_file(path, description)

    def _check_table(self, table: FeatureTable) -> None:
        shapes = self.metadata.modality_shapes
        got = {k: tuple(v.shape[1:]) for k, v in table.features.items()}
        if got != dict(shapes):
            raise ValueError(
                f"{type(self).__name__}.load_table() returned modalities {got}, but the metadata "
                f"promises {dict(shapes)}"
            )
        if table.target.shape[1:] != (self.metadata.num_emotions,):
            raise ValueError(
                f"{type(self).__name__}.load_table() returned targets of shape "
                f"{tuple(table.target.shape)}, expected [N, {self.metadata.num_emotions}]"
            )

    def _fit_statistics(self, table: FeatureTable, train_rows: Tensor) -> None:
        """Fit the standardisation statistics of every modality on ``train_rows`` only.

        ``mean = sum(x) / n`` and ``std = sqrt(sum((x - mean)^2) / n)`` per feature, accumulated
        in float64; features with ``std < MIN_STD`` are centred but not scaled.
        """
        for name, values in table.features.items():
            rows = train_rows
            if name in table.present:
                # Missing windows hold placeholders, not measurements: leave them out.
                rows = rows[table.present[name].index_select(0, rows)]
                if len(rows) == 0:
                    # Nothing to fit (a subject without this sensor): identity statistics; the
                    # modality is masked in every one of these rows anyway.
                    mean = torch.zeros(values.shape[1:], dtype=torch.float64)
                    std = torch.ones(values.shape[1:], dtype=torch.float64)
                    self.feature_mean[name], self.feature_std[name] = mean.float(), std.float()
                    self._statistics[name] = (mean, std)
                    continue
            train = values.index_select(0, rows).to(torch.float64)
            mean = train.mean(dim=0)
            std = train.std(dim=0, correction=0)
            std = torch.where(std < MIN_STD, torch.ones_like(std), std)
            self.feature_mean[name], self.feature_std[name] = mean.float(), std.float()
            self._statistics[name] = (mean, std)

    @staticmethod
    def _apply_statistics(
        table: FeatureTable, statistics: dict[str, tuple[Tensor, Tensor]]
    ) -> FeatureTable:
        """A copy of ``table`` with every modality standardised by ``statistics``.

        ``(x - mean) / std`` in float64, stored as contiguous float32; ``table`` itself when
        ``statistics`` is empty (standardisation off).
        """
        if not statistics:
            return table
        features = {}
        for name, values in table.features.items():
            mean, std = statistics[name]
            standardized = ((values.to(torch.float64) - mean) / std).float()
            if name in table.present:
                # A missing window stays exactly zero (the models ignore it; zero keeps it inert).
                shape = (len(values),) + (1,) * (values.dim() - 1)
                standardized = standardized * table.present[name].view(shape)
            features[name] = standardized.contiguous()
        return dataclasses.replace(table, features=features)

    def train_target_mean(self) -> Tensor:
        """Mean target distribution ``[C]`` of the training rows: the training-mean baseline."""
        target = self._split("train")["target"]
        mean = target.to(torch.float64).mean(dim=0)
        return (mean / mean.sum()).float()

    def split_rows(self, name: str) -> dict[str, Tensor]:
        """Every row of split ``name`` (``train``, ``val`` or ``test``) as one unsharded batch dict.

        For models fitted in closed form from a whole split (the trivial and classic baselines).
        The tensors are shared with the loaders: read them, never modify them in place.
        """
        if name not in ("train", "val", "test"):
            raise ValueError(f"split_rows: name must be 'train', 'val' or 'test', got {name!r}")
        return self._split(name)

    def _split(self, name: str) -> dict[str, Tensor]:
        if self._table is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before using the splits")
        return self._split_tables[name]

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _is_global_zero(self) -> bool:
        return self._rank_and_world()[0] == 0

    def _device(self) -> torch.device:
        """Where the batches are consumed: the trainer's root device (the CPU without one)."""
        strategy = getattr(self.trainer, "strategy", None)
        return torch.device("cpu") if strategy is None else strategy.root_device

    def _device_table(self, name: str) -> dict[str, Tensor]:
        """Split ``name`` on :meth:`_device`, copied there once and reused by every loader.

        Training on a GPU then gathers each batch on the GPU from the resident table: no per-batch
        host-to-device copy. The CPU tables stay as they are (:meth:`split_rows` serves them).
        """
        device = self._device()
        table = self._split(name)
        if all(v.device == device for v in table.values()):
            return table
        cached = self._device_tables.get(name)
        if cached is None or any(v.device != device for v in cached.values()):
            cached = {k: v.to(device) for k, v in table.items()}
            self._device_tables[name] = cached
        return cached

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Pass batches of a resident table through untouched; move others as Lightning does."""
        if isinstance(batch, dict) and all(
            isinstance(v, Tensor) and v.device == device for v in batch.values()
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _loader(
        self, name: str, shuffle: bool, table: dict[str, Tensor] | None = None
    ) -> LightningInMemoryBatches | list:
        if table is None:
            table = self._device_table(name)
        else:
            table = {k: v.to(self._device()) for k, v in table.items()}
        if len(table["target"]) == 0:
            # Lightning skips a stage whose dataloader list is empty.
            return []
        rank, world_size = self._rank_and_world()
        dropout = self.masking.train_dropout if self.masking is not None and shuffle else 0.0
        batches_cls = ModalityDropoutBatches if dropout > 0 else LightningInMemoryBatches
        batches = batches_cls(
            table,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=False,
            seed=self.shuffle_seed,
            rank=rank,
            world_size=world_size,
        )
        if dropout > 0:
            batches.dropout_modalities = self.metadata.modalities
            batches.dropout_rate = dropout
            batches.dropout_seed = self.masking.seed
        return batches

    def train_dataloader(self) -> LightningInMemoryBatches | list:
        """Shuffled training batches; every rank runs the same number of steps."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> LightningInMemoryBatches | list:
        """Validation batches in row order; each row on exactly one rank (``[]`` if no val)."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> LightningInMemoryBatches | list:
        """Test batches in row order; each row on exactly one rank."""
        return self._loader("test", shuffle=False)

    def has_predict_source(self) -> bool:
        """Whether :meth:`load_predict_table` has rows to predict (e.g. a folder of files)."""
        return False

    def load_predict_table(self) -> FeatureTable:
        """The unstandardised rows of the ``predict`` split; data sets with a source override it."""
        raise NotImplementedError(f"{type(self).__name__} has no prediction source")

    def state_dict(self) -> dict[str, Any]:
        """The training rows' standardisation statistics (saved in every checkpoint).

        ``subject_standardize`` records whether the rows were z-scored per subject before these
        statistics were applied, so that a checkpoint cannot be used with the other setting.
        """
        settings = {
            "standardize": self.standardize,
            "subject_standardize": self.subject_standardize,
            "modalities": layout_of(self.metadata.modality_shapes),
        }
        if not self._statistics:
            return settings
        return {
            "feature_mean": {k: mean for k, (mean, _) in self._statistics.items()},
            "feature_std": {k: std for k, (_, std) in self._statistics.items()},
            **settings,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (Lightning calls it when a checkpoint is loaded)."""
        if not state_dict:
            return
        owner = type(self).__name__
        check_checkpoint_state(
            owner,
            state_dict,
            standardize=self.standardize,
            subject_standardize=self.subject_standardize,
            modality_shapes=self.metadata.modality_shapes,
        )
        if "feature_mean" not in state_dict:
            return
        means, stds = state_dict["feature_mean"], state_dict["feature_std"]
        check_statistics(owner, means, stds, MIN_STD)
        self._statistics = {k: (means[k].double(), stds[k].double()) for k in means}
        self.feature_mean = {k: m.float() for k, (m, _) in self._statistics.items()}
        self.feature_std = {k: s.float() for k, (_, s) in self._statistics.items()}

    def _predict_rows(self) -> dict[str, Tensor]:
        """The prediction source's rows, standardised with the training statistics."""
        table = self.load_predict_table()
        self._check_table(table)
        if self.subject_standardize:
            table = standardize_per_subject(table, MIN_STD)
        if self.standardize:
            if not self._statistics:
                # A checkpoint without statistics: refit them from the configured training split.
                self.setup()
            table = self._apply_statistics(table, self._statistics)
        return table.as_batch_table()

    def predict_dataloader(self) -> LightningInMemoryBatches | list:
        """Rows to predict; ``batch["index"]`` traces each prediction to its row.

        With a prediction source (:meth:`has_predict_source`): all its rows, ``index`` counting
        them in source order. Otherwise the test rows (``index`` = row id in :attr:`table`).
        Each row is on exactly one rank.
        """
        if not self.has_predict_source():
            return self._loader("test", shuffle=False)
        return self._loader("predict", shuffle=False, table=self._predict_rows())
