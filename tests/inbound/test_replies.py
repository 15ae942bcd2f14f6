"""Reading customers' replies: keywords in any case and width, survey scores in the ways people write them."""

from __future__ import annotations

import pytest

from outreach.inbound.keywords import Keyword, keyword, parse_choice, parse_score


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "Ｓｔｏｐ",
        "STOP!",
        "stopall",
        "UNSUBSCRIBE",
        "cancel",
        "End",
        "quit",
        "R",
        "ｒ",
        "T",
        "TD",
        "td。",
        "退订",
        " 退订 ",
        "拒收",
        "取消",
        "N",
    ],
)
def test_opt_out_words(text: str) -> None:
    assert keyword(text) is Keyword.OPT_OUT


@pytest.mark.parametrize("text", ["START", "unstop", "Yes", "ＹＥＳ"])
def test_opt_in_words(text: str) -> None:
    assert keyword(text) is Keyword.OPT_IN


@pytest.mark.parametrize("text", ["please stop calling", "R2", "stopped", "退订了吗", "", "10", "help me"])
def test_other_text_is_not_a_keyword(text: str) -> None:
    assert keyword(text) is None


def test_help() -> None:
    assert keyword("HELP") is Keyword.HELP and keyword("帮助") is Keyword.HELP


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("9", 9),
        (" 10 ", 10),
        ("９", 9),
        ("１０", 10),
        ("9分", 9),
        ("10 分", 10),
        ("九分", 9),
        ("十", 10),
        ("0", 0),
        ("8/10", 8),
        ("7 points", 7),
        ("9。", 9),
        ("11", None),
        ("-1", None),
        ("nine", None),
        ("9 and 10", None),
        ("", None),
        ("100", None),
    ],
)
def test_nps_scores(text: str, score: int | None) -> None:
    assert parse_score(text, 0, 10) == score


def test_csat_range_and_choices() -> None:
    assert parse_score("5", 1, 5) == 5 and parse_score("0", 1, 5) is None and parse_score("6", 1, 5) is None
    choices = {"1": "interested", "2": "not_now", "A": "agent"}
    assert parse_choice(" １ ", choices) == "interested"
    assert parse_choice("a", choices) == "agent"
    assert parse_choice("3", choices) is None
