import numpy as np
import pytest

from datamodules.wesad.labels import (
    resolve_items,
    round_distribution,
    subject_distributions,
    valence_groups,
)
from datamodules.wesad.layout import DEFAULT_ITEMS, PANAS_ITEMS_24, PANAS_ITEMS_26
from datamodules.wesad.quest import QuestFormatError, Questionnaire, QuestRound


def _round(condition=1, ratings=None, name="Base"):
    items = PANAS_ITEMS_26 if condition == 2 else PANAS_ITEMS_24
    ratings = ratings or {}
    return QuestRound(name, condition, 0, {i: float(ratings.get(i, 2)) for i in items}, line=6)


def test_default_items_are_dmer_with_annoyed_for_upset():
    dmer = ("Inspired", "Alert", "Excited", "Enthusiastic", "Determined",
            "Afraid", "Upset", "Nervous", "Scared", "Distressed")  # fmt: skip
    assert resolve_items(None) == DEFAULT_ITEMS
    assert [i if i != "Annoyed" else "Upset" for i in DEFAULT_ITEMS] == list(dmer)
    assert set(DEFAULT_ITEMS) <= set(PANAS_ITEMS_24)
    assert valence_groups(DEFAULT_ITEMS) == (0,) * 5 + (1,) * 5


def test_distribution_is_normalised_ratings():
    ratings = {"Inspired": 4, "Alert": 1, "Afraid": 5}
    d = round_distribution(_round(ratings=ratings), ["Inspired", "Alert", "Afraid", "Sad"], "S3")
    np.testing.assert_allclose(d, np.array([4, 1, 5, 2]) / 12)
    assert d.sum() == pytest.approx(1.0)


def test_zero_sum_names_subject_and_condition():
    zeros = dict.fromkeys(DEFAULT_ITEMS, 0)
    with pytest.raises(QuestFormatError, match=r"subject S4, round 'TSST' \(stress.*sum to 0"):
        round_distribution(_round(2, zeros, "TSST"), DEFAULT_ITEMS, "S4")


def test_stress_only_items_outside_the_stress_round():
    items = resolve_items(["Angry", "Happy"])
    assert valence_groups(items) == (1, 0)
    round_distribution(_round(2, name="TSST"), items, "S2")
    with pytest.raises(QuestFormatError, match=r"subject S2, round 'Fun'.*\['Angry'\]"):
        round_distribution(_round(3, name="Fun"), items, "S2")


@pytest.mark.parametrize("items", [[], ["Upset"], ["Alert", "Alert"]])
def test_bad_item_lists(items):
    with pytest.raises(ValueError, match="distinct WESAD PANAS items"):
        resolve_items(items)


def _quest(subject, rounds):
    return Questionnaire(subject, (), (), (), tuple(rounds), f"{subject}_quest.csv")


def test_every_zero_sum_round_is_reported_at_once():
    zeros = dict.fromkeys(DEFAULT_ITEMS, 0)
    quests = {
        "S2": _quest("S2", [_round(1), _round(2, zeros, "TSST")]),
        "S3": _quest("S3", [_round(1, zeros), _round(3, name="Fun")]),
    }
    with pytest.raises(QuestFormatError, match=r"^2 rated round\(s\)") as error:
        subject_distributions(quests, DEFAULT_ITEMS)
    message = str(error.value)
    assert "S2_quest.csv: subject S2, round 'TSST'" in message
    assert "S3_quest.csv: subject S3, round 'Base'" in message
    assert "nan" not in message.lower()


def test_subject_distributions_key_rounds_by_condition_and_occurrence():
    second = QuestRound("Medi 2", 4, 1, {i: 1.0 for i in PANAS_ITEMS_24}, line=9)
    out = subject_distributions({"S2": _quest("S2", [_round(1), second])}, ["Happy", "Sad"])
    assert set(out["S2"]) == {(1, 0), (4, 1)}
    np.testing.assert_allclose(out["S2"][(4, 1)], [0.5, 0.5])
