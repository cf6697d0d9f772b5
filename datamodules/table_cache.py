"""Reuse of a loaded feature table by the folds of one protocol run.

Every fold of a protocol builds its own datamodule, and each ``setup()`` reads the whole data set
again: for a subject-dependent protocol on DMER that is all 73 subjects' files, 73 times, to train
on one subject each time. Inside a :func:`shared_tables` block, a datamodule whose
:meth:`~datamodules.base.FeatureDataModule.table_source_key` equals that of a table loaded
earlier in the block gets that table instead of reading the files again. Outside a block nothing
is kept, so a table never outlives the run that loaded it.

A shared table is read-only: setup builds its splits, standardisation and per-subject z-scores as
copies (``select``, ``dataclasses.replace``), never in place.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from datamodules.table import FeatureTable

# The tables of the open block by source key; None outside a block. At most one entry: a run
# reads one data set, and a second key means the first is no longer wanted.
_shared: dict[Hashable, FeatureTable] | None = None


@contextmanager
def shared_tables() -> Iterator[None]:
    """Within the block, datamodules that read the same source share one loaded table.

    Nested blocks share the outermost block's tables; the tables are dropped when it ends.
    """
    global _shared
    outermost = _shared is None
    if outermost:
        _shared = {}
    try:
        yield
    finally:
        if outermost:
            _shared = None


def load_shared(key: Hashable | None, load: Callable[[], FeatureTable]) -> FeatureTable:
    """``load()``, or the table loaded for ``key`` earlier in the open :func:`shared_tables` block.

    Args:
        key: What identifies the table ``load`` returns (files, their sizes and modification
            times, the settings that shape the table); ``None`` always loads.
        load: Reads the table.
    """
    if _shared is None or key is None:
        return load()
    table = _shared.get(key)
    if table is None:
        _shared.clear()
        table = _shared[key] = load()
    return table
