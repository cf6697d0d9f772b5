"""Parse WESAD's self-report files, ``SX/SX_quest.csv``.

The file is semicolon-separated; the first field of a line is a tag and lines are padded with
empty fields. The tags used here:

* ``# Subj``: the subject name;
* ``# ORDER``: the protocol's rounds in the order they were run (``Base``, ``TSST``,
  ``Medi 1``, ``Fun``, ``Medi 2``, and reading tasks ``sRead``/``fRead`` without ratings);
* ``# START`` / ``# END``: start and end of each round in minutes.seconds;
* ``# PANAS``: one line per rated round (``Base``, ``TSST``, ``Fun``, ``Medi 1``, ``Medi 2`` in
  ``ORDER``'s order), 24 items rated 1-5, 26 for the stress round (TSST), which adds Angry and
  Irritated (item order: :data:`PANAS_ITEMS_24`, :data:`PANAS_ITEMS_26`).

``# STAI``, ``# DIM`` and ``# SSSQ`` lines are recognised and not needed for the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from datamodules.io import DataFormatError
from datamodules.wesad.layout import (
    ORDER_CONDITIONS,
    PANAS_ITEMS_24,
    PANAS_ITEMS_26,
    STRESS,
)


class QuestFormatError(DataFormatError):
    """A questionnaire file is missing or does not have the documented structure."""


@dataclass(frozen=True)
class QuestRound:
    """One rated round of the protocol.

    Attributes:
        name: The ``# ORDER`` entry (``"Medi 1"``).
        condition: Its condition code (1 baseline, 2 stress, 3 amusement, 4 meditation).
        occurrence: How many earlier rounds had the same condition (0 for ``Medi 1``,
            1 for ``Medi 2``).
        panas: Item name -> rating, from the round's ``# PANAS`` line.
        line: 1-based line number of that ``# PANAS`` line, for error messages.
    """

    name: str
    condition: int
    occurrence: int
    panas: dict[str, float]
    line: int

    @property
    def key(self) -> tuple[int, int]:
        """``(condition, occurrence)``, the round's identity within a subject."""
        return self.condition, self.occurrence


@dataclass(frozen=True)
class Questionnaire:
    """The parsed parts of one ``SX_quest.csv``.

    Attributes:
        subject: The subject name (from the file name; checked against ``# Subj``).
        order: Every ``# ORDER`` entry, reading tasks included.
        start: Start of each ``# ORDER`` entry in seconds (empty if the line is absent).
        end: End of each ``# ORDER`` entry in seconds (empty if the line is absent).
        rounds: The rated rounds, in ``# ORDER``'s order.
        path: The file, for error messages.
    """

    subject: str
    order: tuple[str, ...]
    start: tuple[float, ...]
    end: tuple[float, ...]
    rounds: tuple[QuestRound, ...]
    path: str

    def round_of(self, condition: int, occurrence: int) -> QuestRound:
        """The ``occurrence``-th rated round of ``condition``.

        Raises:
            QuestFormatError: If the file has no such round.
        """
        for quest_round in self.rounds:
            if quest_round.condition == condition and quest_round.occurrence == occurrence:
                return quest_round
        raise QuestFormatError(
            f"{self.path}: subject {self.subject} has no rated round number {occurrence + 1} of "
            f"condition {condition} in '# ORDER' {list(self.order)}"
        )


def order_key(entry: str) -> str:
    """Normalised ``# ORDER`` entry: lower case without spaces (``"Medi 1"`` -> ``"medi1"``)."""
    return "".join(entry.split()).lower()


def parse_minutes_seconds(token: str, where: str) -> float:
    """Convert a minutes.seconds time (``"39.55"``; ``"50.3"`` is 50 min 30 s) to seconds.

    The fraction holds seconds written as a decimal, so a dropped trailing zero is restored.

    Raises:
        QuestFormatError: If the token is not ``M`` or ``M.SS`` with SS below 60.
    """
    minutes, _, seconds = token.partition(".")
    seconds = seconds.ljust(2, "0")
    if not minutes.isdigit() or not seconds.isdigit() or len(seconds) > 2 or int(seconds) >= 60:
        raise QuestFormatError(f"{where}: {token!r} is not a minutes.seconds time like '39.55'")
    return 60.0 * int(minutes) + int(seconds)


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin1")
    return text.splitlines()


def _panas_ratings(values: list[str], where: str) -> dict[str, float]:
    if len(values) == len(PANAS_ITEMS_24):
        items = PANAS_ITEMS_24
    elif len(values) == len(PANAS_ITEMS_26):
        items = PANAS_ITEMS_26
    else:
        raise QuestFormatError(
            f"{where}: '# PANAS' has {len(values)} ratings, expected {len(PANAS_ITEMS_24)} "
            f"(or {len(PANAS_ITEMS_26)} after the stress round)"
        )
    ratings = {}
    for position, (item, value) in enumerate(zip(items, values, strict=True), start=2):
        try:
            rating = float(value)
        except ValueError:
            rating = math.nan
        if not math.isfinite(rating) or rating < 0:
            raise QuestFormatError(
                f"{where}, field {position} ({item}): {value!r} is not a non-negative rating"
            )
        ratings[item] = rating
    return ratings


def parse_quest(path: str | Path, subject: str | None = None) -> Questionnaire:
    """Parse one ``SX_quest.csv``.

    Args:
        path: The file.
        subject: The expected subject name; defaults to the file name's prefix (``S2``).

    Returns:
        The order, times and rated rounds of the file.

    Raises:
        QuestFormatError: If the file does not exist, or naming the subject and line of a
            missing or malformed entry.
    """
    path = Path(path)
    subject = subject or path.name.split("_")[0]
    if not path.is_file():
        raise QuestFormatError(f"{path}: questionnaire file of subject {subject} not found")
    tagged: dict[str, list[tuple[int, list[str]]]] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        fields = [field.strip() for field in line.split(";")]
        while fields and not fields[-1]:
            fields.pop()
        if fields and fields[0].startswith("#"):
            tag = " ".join(fields[0].lstrip("#").split()).upper()
            tagged.setdefault(tag, []).append((number, fields[1:]))

    def where(number: int) -> str:
        return f"{path}, line {number} (subject {subject})"

    for number, values in tagged.get("SUBJ", [])[:1]:
        if values and values[0] != subject:
            raise QuestFormatError(
                f"{where(number)}: '# Subj' is {values[0]!r}, expected {subject!r}"
            )
    if "ORDER" not in tagged:
        raise QuestFormatError(f"{path} (subject {subject}): no '# ORDER' line")
    order_line, order = tagged["ORDER"][0]
    times = {}
    for tag in ("START", "END"):
        number, values = tagged.get(tag, [(0, [])])[0]
        times[tag] = tuple(parse_minutes_seconds(v, where(number)) for v in values)

    rated = [
        (entry, ORDER_CONDITIONS[order_key(entry)])
        for entry in order
        if order_key(entry) in ORDER_CONDITIONS
    ]
    panas_lines = tagged.get("PANAS", [])
    if len(panas_lines) != len(rated):
        raise QuestFormatError(
            f"{where(order_line)}: '# ORDER' lists {len(rated)} rated rounds "
            f"{[entry for entry, _ in rated]} but the file has {len(panas_lines)} '# PANAS' lines"
            + (f" (lines {[n for n, _ in panas_lines]})" if panas_lines else "")
        )
    rounds = []
    seen: dict[int, int] = {}
    for (entry, condition), (number, values) in zip(rated, panas_lines, strict=True):
        ratings = _panas_ratings(values, where(number))
        # The stress round alone has 26 items; a 26-item line elsewhere means the PANAS lines
        # are not in ORDER's order, and every label after it would belong to another round.
        if (len(ratings) == len(PANAS_ITEMS_26)) != (condition == STRESS):
            raise QuestFormatError(
                f"{where(number)}: round {entry!r} has {len(ratings)} PANAS ratings, expected "
                f"{len(PANAS_ITEMS_26) if condition == STRESS else len(PANAS_ITEMS_24)} "
                "(only the stress round TSST adds Angry and Irritated)"
            )
        occurrence = seen.get(condition, 0)
        seen[condition] = occurrence + 1
        rounds.append(QuestRound(entry, condition, occurrence, ratings, number))
    return Questionnaire(
        subject=subject,
        order=tuple(order),
        start=times["START"],
        end=times["END"],
        rounds=tuple(rounds),
        path=str(path),
    )
