"""Fake WESAD subjects in the exact release layout, for tests and for trying the pipeline.

``generate_fake_wesad(root)`` writes ``root/SX/SX.pkl`` and ``root/SX/SX_quest.csv`` for a few
subjects with short recordings at the true sampling rates (signals: see
:mod:`datamodules.wesad.fake_signals`) and a questionnaire with every rated round, padded with
empty fields like the originals.

Pickles are written like the Python 2 originals (protocol 2, byte strings as ``BINSTRING``,
``numpy.core`` module paths), so the loader is tested on the format it will meet.

Run ``python -m datamodules.wesad.fixtures ROOT [--subjects all] [--seconds 60]`` to write a
fake data set (default: S2, S3, S4 with about 60 s per study condition).
"""

from __future__ import annotations

import argparse
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datamodules.wesad.fake_signals import ORDER, FakeSubject, make_subject
from datamodules.wesad.layout import SUBJECTS, pickle_path, quest_path, subject_id

PADDED_FIELDS = 27


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 with numpy 1 did: strings as ``BINSTRING``, ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj: str | bytes) -> None:
        """Write a str or bytes object as a Python 2 byte string."""
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj: Any, name: str | None = None) -> None:
        """Write a global under its numpy 1 module path."""
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def write_py2_pickle(obj: Any, path: str | Path) -> None:
    """Pickle ``obj`` in the Python 2 / numpy 1 protocol-2 form of the WESAD release."""
    with Path(path).open("wb") as file:
        Py2Pickler(file, protocol=2).dump(obj)


def _minutes_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}.{rest:02d}"


def _line(tag: str, values: Sequence[object]) -> str:
    fields = [tag, *(str(v) for v in values)]
    return ";".join(fields + [""] * (PADDED_FIELDS - len(fields)))


def quest_lines(truth: FakeSubject) -> list[str]:
    """The lines of ``SX_quest.csv`` for a fake subject, padded with empty fields."""
    rated = list(truth.panas)
    lines = [
        _line("# Subj", [truth.subject]),
        _line("# ORDER", ORDER),
        _line("# START", [_minutes_seconds(truth.spans[e][0]) for e in ORDER]),
        _line("# END", [_minutes_seconds(truth.spans[e][1]) for e in ORDER]),
        _line("", []),
    ]
    lines += [_line("# PANAS", [f"{r:g}" for r in truth.panas[e]]) for e in rated]
    lines += [_line("# STAI", [2, 1, 3, 2, 2, 1]) for _ in rated]
    lines += [_line("# DIM", [5, 4]) for _ in rated]
    lines += [_line("# SSSQ", [3, 2, 4, 1, 2, 3])]
    return lines


def write_fake_subject(
    root: str | Path, subject: str, seconds_per_condition: float = 60.0, seed: int = 0
) -> FakeSubject:
    """Write ``root/SX/SX.pkl`` and ``root/SX/SX_quest.csv`` for one fake subject."""
    data, truth = make_subject(subject, seconds_per_condition, seed)
    pickle_path(root, subject).parent.mkdir(parents=True, exist_ok=True)
    write_py2_pickle(data, pickle_path(root, subject))
    quest_path(root, subject).write_text("\n".join(quest_lines(truth)) + "\n")
    return truth


def generate_fake_wesad(
    root: str | Path,
    subjects: Sequence[str] = ("S2", "S3", "S4"),
    seconds_per_condition: float = 60.0,
    seed: int = 0,
) -> dict[str, FakeSubject]:
    """Write a fake WESAD data set; returns each subject's ground truth."""
    return {
        subject: write_fake_subject(root, subject, seconds_per_condition, seed + index)
        for index, subject in enumerate(subjects)
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Write a fake WESAD data set: ``python -m datamodules.wesad.fixtures ROOT``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root")
    parser.add_argument(
        "--subjects",
        nargs="+",
        default=["S2", "S3", "S4"],
        help="subject names, or 'all' for the 15 of the release (default: S2 S3 S4)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per study condition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    subjects = SUBJECTS if args.subjects == ["all"] else args.subjects
    for subject in subjects:
        try:
            subject_id(subject)
        except ValueError as error:
            parser.error(str(error))
    generate_fake_wesad(args.root, subjects, args.seconds, args.seed)


if __name__ == "__main__":
    main()
