import pytest

from datamodules.wesad.layout import PANAS_ITEMS_24, PANAS_ITEMS_26, quest_path
from datamodules.wesad.quest import QuestFormatError, parse_minutes_seconds, parse_quest


def test_parses_fixture_rounds(fake_wesad):
    root, truth = fake_wesad
    for subject in truth:
        quest = parse_quest(quest_path(root, subject))
        assert quest.subject == subject
        assert quest.order == ("Base", "TSST", "Medi 1", "Fun", "Medi 2", "sRead", "fRead")
        assert [(r.name, r.condition, r.occurrence) for r in quest.rounds] == [
            ("Base", 1, 0),
            ("TSST", 2, 0),
            ("Medi 1", 4, 0),
            ("Fun", 3, 0),
            ("Medi 2", 4, 1),
        ]
        for quest_round in quest.rounds:
            expected = truth[subject].panas[quest_round.name]
            items = PANAS_ITEMS_26 if quest_round.name == "TSST" else PANAS_ITEMS_24
            assert list(quest_round.panas) == list(items)
            assert list(quest_round.panas.values()) == expected
        assert quest.round_of(4, 1).name == "Medi 2"
        assert len(quest.start) == len(quest.end) == len(quest.order)
        # minutes.seconds round trip of the fixture's segment starts (whole seconds)
        first, _ = truth[subject].segments["TSST"]
        assert quest.start[1] == int(first / 700)


@pytest.mark.parametrize(
    ("token", "seconds"), [("7.08", 428.0), ("39.55", 2395.0), ("50.3", 3030.0), ("26", 1560.0)]
)
def test_minutes_seconds(token, seconds):
    assert parse_minutes_seconds(token, "x") == seconds


@pytest.mark.parametrize("token", ["7.61", "a.10", "7.123", ""])
def test_minutes_seconds_rejects(token):
    with pytest.raises(QuestFormatError, match=r"minutes\.seconds"):
        parse_minutes_seconds(token, "x")


def _write(tmp_path, lines, subject="S7"):
    path = tmp_path / f"{subject}_quest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _panas(n, value="2"):
    return "# PANAS;" + ";".join([value] * n) + ";;;"


HEADER = [
    "# Subj;S7;;;",
    "# ORDER;Base;TSST;Medi 1;Fun;Medi 2;sRead;fRead;;",
    "# START;1.00;;;",
    ";;;;",
]


def test_trailing_fields_and_utf8_bom(tmp_path):
    lines = [*HEADER, _panas(24), _panas(26), _panas(24), _panas(24), _panas(24)]
    path = tmp_path / "S7_quest.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines)).encode("utf-8"))
    quest = parse_quest(path)
    assert len(quest.rounds) == 5
    assert quest.start == (60.0,)


def test_missing_round_names_subject_and_lines(tmp_path):
    path = _write(tmp_path, [*HEADER, _panas(24), _panas(26), _panas(24), _panas(24)])
    with pytest.raises(QuestFormatError, match=r"subject S7.*5 rated rounds.*4 '# PANAS' lines"):
        parse_quest(path)


def test_malformed_rating_names_line_and_item(tmp_path):
    bad = "# PANAS;" + ";".join(["2"] * 7 + ["x"] + ["2"] * 16)
    path = _write(tmp_path, [*HEADER, _panas(24), _panas(26), bad, _panas(24), _panas(24)])
    with pytest.raises(QuestFormatError, match=r"line 7 \(subject S7\), field 9 \(Scared\): 'x'"):
        parse_quest(path)


def test_empty_field_inside_a_round(tmp_path):
    bad = "# PANAS;" + ";".join(["2"] * 10 + [""] + ["2"] * 13)
    path = _write(tmp_path, [*HEADER, bad, _panas(26), _panas(24), _panas(24), _panas(24)])
    with pytest.raises(QuestFormatError, match=r"line 5 .*field 12 \(Proud\)"):
        parse_quest(path)


def test_wrong_item_count(tmp_path):
    path = _write(tmp_path, [*HEADER, _panas(20), _panas(26), _panas(24), _panas(24), _panas(24)])
    with pytest.raises(QuestFormatError, match=r"line 5.*20 ratings, expected 24"):
        parse_quest(path)


def test_stress_items_in_wrong_round(tmp_path):
    path = _write(tmp_path, [*HEADER, _panas(26), _panas(24), _panas(24), _panas(24), _panas(24)])
    with pytest.raises(QuestFormatError, match=r"round 'Base' has 26 PANAS ratings, expected 24"):
        parse_quest(path)


def test_subject_mismatch_and_missing_order(tmp_path):
    with pytest.raises(QuestFormatError, match="'# Subj' is 'S7', expected 'S8'"):
        parse_quest(_write(tmp_path, HEADER, subject="S8"))
    with pytest.raises(QuestFormatError, match="no '# ORDER' line"):
        parse_quest(_write(tmp_path, ["# Subj;S7", _panas(24)]))
    with pytest.raises(QuestFormatError, match=r"line 3 .*'1:00'"):
        parse_quest(_write(tmp_path, [HEADER[0], HEADER[1], "# START;1:00"]))
