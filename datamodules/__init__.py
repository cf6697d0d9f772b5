"""Datamodules: feature tables from data set files, evaluation protocols and in-memory batches.

A data set is one module here (DMER's feature files, the built-in synthetic set); each builds a
:class:`FeatureTable` and inherits splitting, standardisation and batching from
:class:`FeatureDataModule`.
"""

from datamodules.base import FeatureDataModule
from datamodules.batches import InMemoryBatches
from datamodules.dmer import (
    DMER_EMOTIONS,
    DMER_VALENCE_GROUPS,
    DMER_VALID_SUBJECTS,
    DMERDataModule,
    dmer_metadata,
    load_dmer_file,
)
from datamodules.io import DataFormatError, read_mat_variables
from datamodules.metadata import DatasetMetadata
from datamodules.protocols import (
    PROTOCOLS,
    Split,
    describe_split,
    num_folds,
    split_table,
    write_split_file,
)
from datamodules.synthetic import SyntheticDMERDataModule, generate_synthetic_dmer
from datamodules.table import FeatureTable

__all__ = [
    "DMER_EMOTIONS",
    "DMER_VALENCE_GROUPS",
    "DMER_VALID_SUBJECTS",
    "PROTOCOLS",
    "DMERDataModule",
    "DataFormatError",
    "DatasetMetadata",
    "FeatureDataModule",
    "FeatureTable",
    "InMemoryBatches",
    "Split",
    "SyntheticDMERDataModule",
    "describe_split",
    "dmer_metadata",
    "generate_synthetic_dmer",
    "load_dmer_file",
    "num_folds",
    "read_mat_variables",
    "split_table",
    "write_split_file",
]
