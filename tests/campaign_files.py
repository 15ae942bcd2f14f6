"""Campaign files for tests: write one, and read back the problems it loads with as (line, col, message)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from outreach.campaigns.loading import load_campaign
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.store.fields import AttributeType

CATALOG: dict[str, AttributeType] = {
    "status": "string",
    "age": "number",
    "products": "list",
    "city": "string",
    "last_login": "date",
    "vip": "boolean",
}


Found = tuple[int | None, int | None, str]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(templates_dir=tmp_path / "templates")


def write(tmp_path: Path, text: str, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def template_file(settings: Settings, name: str, text: str) -> Path:
    path = settings.templates_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(
    path: Path, settings: Settings, catalog: dict[str, AttributeType] | None = None, *, in_file: Path | None = None
) -> list[Found]:
    """(line, col, message) of every problem, all of which must be in `in_file` (default: the campaign)."""
    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, catalog)
    for problem in caught.value.problems:
        assert problem.path == str(in_file or path), problem
        assert "Input should" not in problem.message and "Value error" not in problem.message, problem
    return [(p.line, p.col, p.message) for p in caught.value.problems]


def at(path: Path, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the `nth` occurrence of `needle` in the file."""
    text = path.read_text(encoding="utf-8")
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def minimal(steps: str = "", **top: str) -> str:
    """A valid campaign with its steps (indented YAML under `steps:`) and top-level keys replaced."""
    keys = {"id": "c1", "name": "Test", "purpose": "service", **top}
    head = "".join(f"{k}: {v}\n" for k, v in keys.items())
    body = steps or '  - id: s1\n    channel: sms\n    content: {sms: "Hello {{ name }}"}\n'
    return head + "steps:\n" + body


COMPLAINTS = """
id: complaint-ack
name: Acknowledge complaints at once
purpose: service
trigger:
  inbound:
    channels: [wechat, whatsapp, sms]
    match: "投诉|complain"            # regular expression, case-insensitive, on the message text
tag: complaint                        # added to the customer's profile
steps:
  - id: ack
    channel: reply                    # the channel and thread the customer wrote on
    content:
      wechat: "{{ name }}您好,已收到您的反馈,客服将在2小时内联系您。"
      whatsapp: "Hello {{ name }}, we received your message and will contact you within 2 hours."
      sms: "{{ name }}您好,已收到您的反馈。"
"""
