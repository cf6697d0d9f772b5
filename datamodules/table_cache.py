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
from dataclasses import dataclass

from datamodules.table import FeatureTable


@dataclass
class _Block:
    """The open block's table and its key: one at a time, since a run reads one data set."""

    key: Hashable | None = None
    table: FeatureTable | None = None


# The outermost open block; None outside a block.
_block: _Block | None = None


@contextmanager
def shared_tables() -> Iterator[None]:
    """Within the block, datamodules that read the same source share one loaded table.

    Nested blocks share the outermost block's table; the table is dropped when it ends.
    """
    global _block
    outermost = _block is None
    if outermost:
        _block = _Block()
    try:
        yield
    finally:
        if outermost:
            _block = None


def load_shared(
    key: Callable[[], Hashable | None], load: Callable[[], FeatureTable]
) -> FeatureTable:
    """``load()``, or the table loaded for the same key earlier in the open block.

    Args:
        key: Returns what identifies the table ``load`` returns (files, their sizes and
            modification times, the settings that shape the table), or ``None``: always load.
            Called only inside a :func:`shared_tables` block.
        load: Reads the table.
    """
    source = None if _block is None else key()
    if source is None:
        return load()
    if _block.table is None or _block.key != source:
        _block.table, _block.key = load(), source
    return _block.table
