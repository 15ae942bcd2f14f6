"""Reading what customers text back: opt-out / opt-in / help keywords and survey answers.

Text is compared after Unicode NFKC normalisation (full-width letters and digits become ASCII), case
folding, and trimming of spaces and trailing punctuation, so `Ｓｔｏｐ`, ` stop ` and `STOP!` all read STOP.
A keyword counts only when it is the whole message: "please don't stop" is a reply, not an opt-out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# Twilio's own opt-out words, and the customs of Chinese SMS providers (回复R拒收, 回T退订, TD, 退订 ...).
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "r", "t", "td", "n", "退订", "拒收", "取消"}
)
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info", "帮助"})

_TRAILING = "。.!!??,,;;~~ "
_CHINESE_NUMBERS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_SCORE = re.compile(r"^(\d{1,2}|[零一二两三四五六七八九十])\s*(分|points?|pts?|/\s*10|/\s*5)?$")


def normalize(text: str) -> str:
    """The text as compared: NFKC, case-folded, inner spaces collapsed, outer spaces and punctuation gone."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split()).strip(_TRAILING)


def keyword(text: str) -> Keyword | None:
    word = normalize(text)
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def parse_score(text: str, low: int, high: int) -> int | None:
    """A survey score between `low` and `high`: `9`, ` 10 `, `９`, `9分`, `九分`, `8/10`; else None."""
    match = _SCORE.match(normalize(text))
    if match is None:
        return None
    raw = match.group(1)
    value = _CHINESE_NUMBERS[raw] if raw in _CHINESE_NUMBERS else int(raw)
    return value if low <= value <= high else None


def parse_choice(text: str, choices: Mapping[str, str]) -> str | None:
    """The meaning of a keyword answer (`{"1": "interested", "2": "not_now"}`), or None."""
    answer = normalize(text)
    for key, meaning in choices.items():
        if normalize(key) == answer:
            return meaning
    return None
