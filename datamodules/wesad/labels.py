"""Emotion distributions of WESAD windows from the PANAS ratings of each round.

Construction (the EDL papers on WESAD do not publish theirs): for subject ``s`` and round ``r``
with ratings ``x_i`` of the chosen items ``i = 1..C``, every window of the round gets

    d_i = x_i / sum_j x_j.

The item set is configurable; the default (:data:`~datamodules.wesad.layout.DEFAULT_ITEMS`) is
DMER's ten items with Annoyed standing in for Upset, so models and tables line up across the two
data sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from datamodules.wesad.layout import (
    CONDITION_NAMES,
    DEFAULT_ITEMS,
    PANAS_ITEMS_26,
    valence_group,
)
from datamodules.wesad.quest import QuestFormatError, Questionnaire, QuestRound


def resolve_items(items: Sequence[str] | None) -> tuple[str, ...]:
    """The PANAS items used as emotions: ``items`` checked, or the default set.

    Raises:
        ValueError: For an empty list, a duplicate or a name that is not a WESAD PANAS item.
    """
    if items is None:
        return DEFAULT_ITEMS
    items = tuple(items)
    unknown = [item for item in items if item not in PANAS_ITEMS_26]
    if unknown or not items or len(set(items)) != len(items):
        raise ValueError(
            f"items must be distinct WESAD PANAS items, got {list(items)}"
            + (f"; unknown: {unknown}; known: {list(PANAS_ITEMS_26)}" if unknown else "")
        )
    return items


def valence_groups(items: Sequence[str]) -> tuple[int, ...]:
    """Valence group of each item: 0 positive, 1 negative."""
    return tuple(valence_group(item) for item in items)


def round_distribution(quest_round: QuestRound, items: Sequence[str], subject: str) -> np.ndarray:
    """The emotion distribution of one rated round: the items' ratings normalised to sum 1.

    Args:
        quest_round: The round's parsed PANAS ratings.
        items: The items to use, in output order.
        subject: The subject name, for errors.

    Returns:
        Float64 ``[C]`` summing to 1.

    Raises:
        QuestFormatError: If the round lacks an item (Angry and Irritated exist only after the
            stress round) or the chosen ratings sum to zero.
    """
    where = (
        f"subject {subject}, round {quest_round.name!r} "
        f"({CONDITION_NAMES[quest_round.condition]}, '# PANAS' line {quest_round.line})"
    )
    missing = [item for item in items if item not in quest_round.panas]
    if missing:
        raise QuestFormatError(f"{where}: no rating for items {missing}")
    ratings = np.array([quest_round.panas[item] for item in items], dtype=np.float64)
    total = ratings.sum()
    if total <= 0:
        raise QuestFormatError(
            f"{where}: the ratings of items {list(items)} sum to {total:g}; expected a positive "
            "sum to normalise into a distribution (choose other items or drop the subject)"
        )
    return ratings / total


def subject_distributions(
    quests: Mapping[str, Questionnaire], items: Sequence[str]
) -> dict[str, dict[tuple[int, int], np.ndarray]]:
    """The distribution of every rated round of every subject, checked all at once.

    Every round that cannot be labelled (a zero sum of the chosen ratings, a missing item) is
    collected first, so one error lists them all instead of stopping at the first subject.

    Args:
        quests: Subject name -> parsed questionnaire.
        items: The items to use, in output order.

    Returns:
        Subject -> (condition, occurrence) -> float64 ``[C]`` summing to 1.

    Raises:
        QuestFormatError: Listing every subject and round whose distribution is undefined.
    """
    out: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    problems = []
    for subject, quest in quests.items():
        out[subject] = {}
        for quest_round in quest.rounds:
            try:
                distribution = round_distribution(quest_round, items, subject)
            except QuestFormatError as error:
                problems.append(f"{quest.path}: {error}")
                continue
            out[subject][(quest_round.condition, quest_round.occurrence)] = distribution
    if problems:
        raise QuestFormatError(
            f"{len(problems)} rated round(s) have no emotion distribution for items "
            f"{list(items)}:\n  " + "\n  ".join(problems)
        )
    return out
