"""Campaign keys and values: unknown and missing keys, wrong types, values out of range and malformed ids, each
reported at the key or value in words a marketer reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.core.settings import Settings
from tests.campaign_files import minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


def test_unknown_keys_are_reported_at_the_key(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        colour: blue
        schedul: {cron: "0 10 * * *"}
        steps:
          - id: a
            channel: sms
            content: {sms: "x", fax: "y"}
            delay: 3d
        """,
    )
    assert problems(path, settings) == [
        (
            4,
            1,
            "unknown key 'colour' (allowed here: id, name, purpose, description, segment, schedule, trigger, "
            "quiet_hours, frequency_cap, throttle, on_unknown, shared_address, default_locale, tag, steps)",
        ),
        (5, 1, "unknown key 'schedul'; did you mean 'schedule'?"),
        (9, 25, "unknown key 'fax' (allowed here: sms, email, whatsapp, wechat)"),
        (
            10,
            5,
            "unknown key 'delay' (allowed here: id, channel, fallback, content, template, variants, after, unless, "
            "only_if, expects)",
        ),
    ]


def test_missing_keys_point_at_the_mapping_that_lacks_them(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        # a campaign without a name

        id: c1
        purpose: service
        steps:
          - id: a
            content:
              email: {subject: "Hi"}
          - channel: sms
            content: {sms: "x"}
        """,
    )
    assert problems(path, settings) == [
        (3, 1, "missing required key 'name'"),
        (6, 5, "steps[0]: missing required key 'channel'"),
        (8, 14, "steps[0].content.email: missing required key 'text'"),
        (9, 5, "steps[1]: missing required key 'id'"),
    ]


def test_wrong_types_are_explained_without_pydantic_jargon(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name:
        purpose: [service]
        frequency_cap: {max: two, per: 7d}
        quiet_hours: 21:00-08:00
        trigger:
          inbound: {channels: wechat, match: 42}
        steps:
          - ask
          - id: b
            channel: sms
            content: Hello there
            after: 3
        """,
    )
    assert problems(path, settings) == [
        (2, 1, "name: has no value"),
        (3, 10, "purpose: a list is not valid; write 'service' or 'marketing'"),
        (4, 22, "frequency_cap.max: should be a whole number, not 'two'"),
        (5, 14, "quiet_hours: should be a mapping (`key: value` lines), not '21:00-08:00'"),
        (7, 23, "trigger.inbound.channels: should be a list (lines starting with `- `), not 'wechat'"),
        (7, 38, "trigger.inbound.match: should be text, not a number (42)"),
        (9, 5, "steps[0]: should be a mapping (`key: value` lines), not 'ask'"),
        (12, 14, "steps[1].content: should be a mapping (`key: value` lines), not 'Hello there'"),
        (13, 12, "steps[1].after: should be text, not a number (3)"),
    ]


def test_values_out_of_range(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: ""
        purpose: marketing
        frequency_cap: {max: 0, per: 1x}
        quiet_hours: {start: "24:00", end: "8:00"}
        throttle: 50 per second
        on_unknown: retry
        trigger:
          inbound: {channels: [wechat, fax], match: "(投诉|complain"}
        steps: []
        """,
    )
    assert problems(path, settings) == [
        (2, 7, "name: must not be empty"),
        (4, 22, "frequency_cap.max: should be more than 0"),
        (4, 30, "frequency_cap.per: '1x' is not a duration like 30m, 12h, 3d or 1d12h"),
        (5, 22, "quiet_hours.start: '24:00' is not valid: write a time as HH:MM"),
        (5, 36, "quiet_hours.end: '8:00' is not valid: write a time as HH:MM"),
        (6, 11, "throttle: '50 per second' is not valid: write a rate like 50/s, 300/m or 1000/h"),
        (7, 13, "on_unknown: 'retry' is not valid; write 'hold' or 'resend'"),
        (9, 32, "trigger.inbound.channels[1]: 'fax' is not valid; write 'sms', 'email', 'whatsapp' or 'wechat'"),
        # the column of the unclosed parenthesis, inside the quoted string
        (9, 46, "trigger.inbound.match: not a regular expression: missing ), unterminated subpattern"),
        (10, 8, "steps: needs at least one step"),
    ]


@pytest.mark.parametrize("bad", ["Bad-ID", "nps_2026", "nps 2026", "-nps", "ä", "x" * 65])
def test_campaign_ids_are_lowercase_letters_digits_and_dashes(tmp_path: Path, settings: Settings, bad: str) -> None:
    path = write(tmp_path, minimal(id=f'"{bad}"'))
    assert problems(path, settings) == [
        (
            1,
            5,
            f"id: {bad!r} is not valid: ids are lowercase letters, digits and -, starting with a letter or digit "
            "(at most 64)",
        )
    ]


def test_step_ids_and_tags_are_checked_too(tmp_path: Path, settings: Settings) -> None:
    steps = '  - id: Ask_Again\n    channel: sms\n    content: {sms: "x"}\n'
    path = write(tmp_path, minimal(steps, tag="VIP"))
    assert problems(path, settings) == [
        (4, 6, "tag: 'VIP' is not valid: tags are lowercase letters, digits and -, starting with a letter or digit "
         "(at most 64)"),
        (6, 9, "steps[0].id: 'Ask_Again' is not valid: ids are lowercase letters, digits and -, starting with a "
         "letter or digit (at most 64)"),
    ]  # fmt: skip
