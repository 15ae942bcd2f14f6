"""Segments and `only_if` conditions in campaign files: problems pointed at inside the YAML string, and names
and types checked against the customers' attributes once they are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from tests.campaign_files import CATALOG, at, minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name

CALLABLE = "the functions a segment may call are days_ago(N), days_from_now(N), today() and month_day(date)"


@pytest.mark.parametrize(
    ("segment", "needle", "message"),
    [
        ('"status == \'active\' and foo.bar == 1"', "foo.bar", "attribute access (a.b) is not allowed in a segment"),
        ("status == 'active' and open('x') == 1", "open", CALLABLE),
        ("\"city == '上海' and __import__('os')\"", "__import__",
         CALLABLE),
        ("'  age >= 18 and and'", "and'", "segment does not parse: invalid syntax"),
        ("last_login < days_ago(1.5)", "days_ago", "days_ago takes one whole number of days, like days_ago(30)"),
        ("age + 1 > 2", "age +", "arithmetic is not allowed in a segment"),
    ],
)  # fmt: skip
def test_a_bad_segment_is_pointed_at_inside_the_string(
    tmp_path: Path, settings: Settings, segment: str, needle: str, message: str
) -> None:
    path = write(tmp_path, minimal(segment=segment))
    expected = message if message.startswith("segment") else f"segment: {message}"
    assert problems(path, settings) == [(*at(path, needle), expected)]


def test_segment_names_and_types_are_checked_against_the_catalog(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        segment: >
          status == 'active' and
          citty in ('Shanghai', 'Beijing')
        steps:
          - id: a
            channel: sms
            only_if: age >= 'eighteen'
            content: {sms: "x"}
        """,
    )
    load_campaign(path, settings, None)
    assert problems(path, settings, CATALOG) == [
        (6, 3, "segment: no customer has a field or attribute named 'citty'; did you mean 'city'?"),
        (10, 21, "steps[0].only_if: 'age' holds number values; it cannot be compared with 'eighteen'"),
    ]


def test_every_unknown_name_of_a_segment_is_reported(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        segment: "statuss == 'active' and citty == 'Shanghai' and age >= 18"
        steps:
          - id: a
            channel: sms
            content: {sms: "x"}
        """,
    )
    assert problems(path, settings, CATALOG) == [
        (*at(path, "statuss"), "segment: no customer has a field or attribute named 'statuss'; did you mean 'status'?"),
        (*at(path, "citty"), "segment: no customer has a field or attribute named 'citty'; did you mean 'city'?"),
    ]
