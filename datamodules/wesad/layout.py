"""Constants of the WESAD release (UCI dataset 465): subjects, signals, rates, conditions, PANAS.

Everything the loader knows about the on-disk layout lives here, so the other modules read
like the data flow and a change of convention is made in one place.
"""

from __future__ import annotations

from pathlib import Path

SUBJECTS: tuple[str, ...] = tuple(f"S{i}" for i in (*range(2, 12), *range(13, 18)))
"""The 15 usable subjects (S1 and S12 were discarded by the data set's authors)."""

LABEL_RATE = 700
"""Sampling rate (Hz) of the ``label`` array and of every chest (RespiBAN) signal."""

CHEST_CHANNELS: dict[str, int] = {"ACC": 3, "ECG": 1, "EMG": 1, "EDA": 1, "Temp": 1, "Resp": 1}
"""Chest signals and their channel counts, all at :data:`LABEL_RATE` (note the key case)."""

WRIST_RATES: dict[str, int] = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}
"""Wrist (Empatica E4) signals and their sampling rates in Hz."""

WRIST_CHANNELS: dict[str, int] = {"ACC": 3, "BVP": 1, "EDA": 1, "TEMP": 1}
"""Wrist signals and their channel counts."""

BASELINE, STRESS, AMUSEMENT, MEDITATION = 1, 2, 3, 4
"""Study-condition codes of the ``label`` array (0 transient and 5/6/7 are not used)."""

CONDITION_NAMES: dict[int, str] = {
    BASELINE: "baseline",
    STRESS: "stress",
    AMUSEMENT: "amusement",
    MEDITATION: "meditation",
}

SECOND_MEDITATION_TRIAL = 5
"""Trial id of the second meditation round; the other rounds use their condition code."""

ORDER_CONDITIONS: dict[str, int] = {
    "base": BASELINE,
    "tsst": STRESS,
    "fun": AMUSEMENT,
    "medi1": MEDITATION,
    "medi2": MEDITATION,
}
"""``# ORDER`` entry (lower case, spaces removed) of each questionnaire round -> condition code.

Other entries (``sRead``, ``fRead``, ``bRead``) are reading tasks without a questionnaire.
"""

PANAS_ITEMS_24: tuple[str, ...] = (
    "Active",
    "Distressed",
    "Interested",
    "Inspired",
    "Annoyed",
    "Strong",
    "Guilty",
    "Scared",
    "Hostile",
    "Excited",
    "Proud",
    "Irritable",
    "Enthusiastic",
    "Ashamed",
    "Alert",
    "Nervous",
    "Determined",
    "Attentive",
    "Jittery",
    "Afraid",
    "Stressed",
    "Frustrated",
    "Happy",
    "Sad",
)
"""PANAS items of the rounds other than stress, in file order."""

PANAS_ITEMS_26: tuple[str, ...] = (*PANAS_ITEMS_24[:-1], "Angry", "Irritated", "Sad")
"""PANAS items of the stress round, which adds Angry and Irritated before Sad."""

NEGATIVE_ITEMS: frozenset[str] = frozenset(
    {
        "Distressed",
        "Annoyed",
        "Guilty",
        "Scared",
        "Hostile",
        "Irritable",
        "Ashamed",
        "Nervous",
        "Jittery",
        "Afraid",
        "Stressed",
        "Frustrated",
        "Angry",
        "Irritated",
        "Sad",
    }
)
"""Items of negative valence (group 1); every other PANAS item is positive (group 0)."""

DEFAULT_ITEMS: tuple[str, ...] = (
    "Inspired",
    "Alert",
    "Excited",
    "Enthusiastic",
    "Determined",
    "Afraid",
    "Annoyed",
    "Nervous",
    "Scared",
    "Distressed",
)
"""DMER's ten PANAS items in DMER's column order, with Annoyed in the place of Upset.

WESAD's first 20 items are the 20 items of the standard PANAS with Upset replaced by Annoyed,
in the order of the German PANAS (Krohne et al., 1996), whose item in Upset's place is
"verärgert", which translates back as "annoyed". Annoyed is therefore most likely the rating the
participants gave to the item that stands for Upset, which keeps the two label spaces aligned.
"""


def valence_group(item: str) -> int:
    """Valence group of a PANAS item: 0 positive, 1 negative."""
    return int(item in NEGATIVE_ITEMS)


def subject_id(subject: str) -> int:
    """Numeric id of a subject name (``"S13"`` -> 13).

    Raises:
        ValueError: If the name is not ``S`` followed by digits.
    """
    if len(subject) < 2 or subject[0] != "S" or not subject[1:].isdigit():
        raise ValueError(f"WESAD subject names look like 'S2'..'S17', got {subject!r}")
    return int(subject[1:])


def pickle_path(root: str | Path, subject: str) -> Path:
    """Path of a subject's signal pickle, ``root/SX/SX.pkl``."""
    return Path(root) / subject / f"{subject}.pkl"


def quest_path(root: str | Path, subject: str) -> Path:
    """Path of a subject's questionnaire file, ``root/SX/SX_quest.csv``."""
    return Path(root) / subject / f"{subject}_quest.csv"
