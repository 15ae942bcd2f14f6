"""Campaign files that are not a good YAML mapping: syntax errors, tabs, duplicate keys, other documents and
unreadable files, each reported at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.core.settings import Settings
from tests.campaign_files import problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


def test_yaml_syntax_error(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: [unclosed
        purpose: service
        """,
    )
    [(line, col, message)] = problems(path, settings)
    assert (line, col) == (3, 8)  # where the parser noticed: the `:` after `purpose`
    assert message.startswith("YAML syntax error: expected ',' or ']', but got ':'")
    assert "flow sequence started at line 2, column 7" in message


def test_bad_indentation_and_tabs(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, "id: c1\nname: x\n  purpose: service\n")
    [(line, col, message)] = problems(path, settings)
    assert (line, col) == (3, 10) and message.startswith("YAML syntax error: mapping values are not allowed")

    path = write(tmp_path, "id: c1\nsteps:\n\t- id: a\n")
    assert problems(path, settings) == [(3, 1, "a tab character: indent YAML with spaces, not tabs")]


def test_every_duplicate_key_is_reported_at_its_second_appearance(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: sms
            content: {sms: "x", sms: "y"}
            channel: email
        name: Again
        """,
    )
    assert problems(path, settings) == [
        (7, 25, "duplicate key 'sms': it is already set on line 7"),
        (8, 5, "duplicate key 'channel': it is already set on line 6"),
        (9, 1, "duplicate key 'name': it is already set on line 2"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [("", (1, 1)), ("# only a comment\n", (1, 1)), ("\n\n- a\n- b\n", (3, 1)), ("just text\n", (1, 1))],
)
def test_a_campaign_file_is_a_mapping(tmp_path: Path, settings: Settings, text: str, where: tuple[int, int]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    assert problems(path, settings) == [(*where, "a campaign file is a YAML mapping (id:, name:, steps: ...)")]


def test_unreadable_files(tmp_path: Path, settings: Settings) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems(missing, settings) == [(None, None, "no such file")]
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: café\n".encode("latin-1"))
    [(line, col, message)] = problems(latin1, settings)
    assert (line, col) == (None, None) and message.startswith("not UTF-8 text")
