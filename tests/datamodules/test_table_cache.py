"""Reusing a loaded table across the folds of a run: when it is reused, when it is not."""

from __future__ import annotations

import os

import pytest
import torch
from datamodule_fakes import ToyDataModule, make_table

from datamodules.dmer import DMERDataModule
from datamodules.io import DataFormatError
from datamodules.synthetic import generate_synthetic_dmer
from datamodules.table_cache import shared_tables


class KeyedToy(ToyDataModule):
    """A toy datamodule whose table has a source key."""

    def __init__(self, table, key, **kwargs):
        super().__init__(table, **kwargs)
        self.key = key

    def table_source_key(self):
        return self.key


def _set_up(key, table=None, **kwargs):
    datamodule = KeyedToy(make_table() if table is None else table, key, **kwargs)
    datamodule.setup()
    return datamodule


def test_folds_in_a_block_read_the_source_once():
    table = make_table()
    with shared_tables():
        first = _set_up("data", table, protocol="loso", fold=0)
        second = _set_up("data", table, protocol="loso", fold=1)
    assert (first.loads, second.loads) == (1, 0)
    # the reused table gives the fold exactly what its own read would give
    alone = KeyedToy(make_table(), "data", protocol="loso", fold=1)
    alone.setup()
    for name in ("train", "val", "test"):
        for column, values in alone.split_rows(name).items():
            assert torch.equal(second.split_rows(name)[column], values)


def test_nothing_is_reused_outside_a_block_or_without_a_key():
    assert _set_up("data").loads == 1
    assert _set_up("data").loads == 1
    with shared_tables():
        assert _set_up(None).loads == 1
        assert _set_up(None).loads == 1
    with shared_tables():
        assert _set_up("data").loads == 1  # the previous block's table is gone


def test_another_key_reads_again_and_nested_blocks_share_the_outer_tables():
    with shared_tables():
        assert _set_up("a").loads == 1
        with shared_tables():
            assert _set_up("a").loads == 0
            assert _set_up("b").loads == 1
        assert _set_up("b").loads == 0  # still the outer block's
        assert _set_up("a").loads == 1  # one table at a time: "b" replaced it


def test_set_up_leaves_the_shared_table_unchanged():
    table = make_table()
    original = {k: v.clone() for k, v in table.features.items()}
    with shared_tables():
        for fold in range(3):
            datamodule = _set_up(
                "data", table, protocol="loso", fold=fold, subject_standardize=True
            )
            _ = datamodule.table  # the lazily standardised whole table too
    for name, values in original.items():
        assert torch.equal(table.features[name], values)


@pytest.fixture
def dmer_root(tmp_path):
    generate_synthetic_dmer(tmp_path, num_subjects=2, rows_per_clip=2, seed=0)
    return tmp_path


def test_dmer_key_follows_the_files_and_the_settings(dmer_root):
    ids = sorted(int(p.stem) for p in dmer_root.glob("*.mat"))
    base = DMERDataModule(str(dmer_root), subjects=ids).table_source_key()
    assert base is not None
    assert base == DMERDataModule(str(dmer_root), subjects=ids, fold=1).table_source_key()
    assert base != DMERDataModule(str(dmer_root), subjects=ids[:1]).table_source_key()
    assert (
        base != DMERDataModule(str(dmer_root), subjects=ids, modalities=["eeg"]).table_source_key()
    )
    path = dmer_root / f"{ids[0]}.mat"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert base != DMERDataModule(str(dmer_root), subjects=ids).table_source_key()
    # a missing file: no key, so that loading reports the file
    missing = DMERDataModule(str(dmer_root), subjects=[*ids, 999])
    assert missing.table_source_key() is None
    with shared_tables(), pytest.raises(DataFormatError, match=r"999\.mat"):
        missing.setup()
