"""Campaign files: what loads, and every problem reported as PATH:LINE:COL with a message a marketer reads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)

from outreach.campaigns import LoadedCampaign, load_campaign, load_campaigns
from outreach.config import Settings
from outreach.errors import InputError
from outreach.fields import AttributeType

CATALOG: dict[str, AttributeType] = {
    "status": "string",
    "age": "number",
    "products": "list",
    "city": "string",
    "last_login": "date",
    "vip": "boolean",
}

Found = tuple[int | None, int | None, str]

# -- helpers ---------------------------------------------------------------------------------------------


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


NPS = """
id: nps-2026q4                  # unique, [a-z0-9-]
name: Q4 service satisfaction survey
purpose: service                # service | marketing
segment: "status == 'active' and age >= 18 and 'savings' in products and city in ('Shanghai', 'Beijing')"
schedule:                       # optional; without it the campaign runs only when asked
  cron: "0 10 * * MON"
  timezone: Asia/Shanghai
quiet_hours: {start: "21:00", end: "08:00"}
frequency_cap: {max: 2, per: 7d}
throttle: 50/s
steps:
  - id: ask
    channel: sms
    fallback: email
    content:
      sms: "{{ name }}您好,请回复0-10为我们的服务打分。"
      email:
        subject: "{{ name }},请为我们的服务打分"
        text: "尊敬的{{ name }}:..."
        html: "<p>尊敬的{{ name }}:...</p>"
  - id: reminder
    after: 3d
    unless: replied
    channel: email
    template: nps/reminder
"""

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


def nps_template_files(settings: Settings) -> None:
    template_file(settings, "nps/reminder.subject.j2", "{{ name }}, a reminder\n")
    template_file(settings, "nps/reminder.txt.j2", "Dear {{ name }},\nplease rate us: {{ unsubscribe_url }}\n")
    template_file(settings, "nps/reminder.html.j2", "<p>Dear {{ name }}</p>\n")


# -- good campaigns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("catalog", [None, CATALOG], ids=["no-catalog", "catalog"])
def test_the_contracts_survey_campaign_loads_with_its_templates(
    tmp_path: Path, settings: Settings, catalog: dict[str, AttributeType] | None
) -> None:
    nps_template_files(settings)
    path = write(tmp_path, NPS)

    loaded = load_campaign(path, settings, catalog)

    assert isinstance(loaded, LoadedCampaign)
    assert loaded.id == "nps-2026q4" and loaded.path == path
    assert loaded.source == path.read_text(encoding="utf-8")
    c = loaded.campaign
    assert c.purpose == "service"
    assert c.schedule is not None and (c.schedule.cron, c.schedule.timezone) == ("0 10 * * MON", "Asia/Shanghai")
    assert c.quiet_hours is not None and (c.quiet_hours.start, c.quiet_hours.end) == ("21:00", "08:00")
    assert c.frequency_cap is not None and c.frequency_cap.max == 2
    assert [s.id for s in loaded.first_steps()] == ["ask"]
    assert c.steps[1].delay is not None and c.steps[1].delay.days == 3

    assert set(loaded.templates) == {"ask", "reminder"}
    ask = loaded.templates["ask"]
    assert set(ask) == {"sms", "email"}
    assert ask["sms"].parts["body"].text == "{{ name }}您好,请回复0-10为我们的服务打分。"
    assert set(ask["email"].parts) == {"subject", "text", "html"}
    assert ask["email"].parts["html"].html and not ask["email"].parts["text"].html
    assert ask["email"].parts["subject"].path == str(path)
    # an inline template knows where it is: line 16 of the file, just inside the quotes
    assert ask["sms"].parts["body"].locate(1) == (16, 13)

    reminder = loaded.templates["reminder"]["email"]
    assert set(reminder.parts) == {"subject", "text", "html"}
    assert reminder.parts["text"].text.startswith("Dear {{ name }},")
    assert reminder.parts["text"].path == str(settings.templates_dir / "nps" / "reminder.txt.j2")
    assert reminder.parts["html"].html


def test_the_contracts_inbound_trigger_campaign_loads(tmp_path: Path, settings: Settings) -> None:
    loaded = load_campaign(write(tmp_path, COMPLAINTS), settings, CATALOG)

    c = loaded.campaign
    assert c.trigger is not None and c.trigger.inbound.channels == ["wechat", "whatsapp", "sms"]
    assert c.trigger.inbound.match == "投诉|complain" and c.tag == "complaint" and c.schedule is None
    # `channel: reply` needs a template for every channel the trigger listens on
    assert set(loaded.templates["ack"]) == {"wechat", "whatsapp", "sms"}
    assert loaded.templates["ack"]["whatsapp"].parts["body"].text.startswith("Hello {{ name }}")


def test_template_files_email_html_is_optional_and_other_channels_fall_back_to_sms(
    tmp_path: Path, settings: Settings
) -> None:
    template_file(settings, "n/a.subject.j2", "Hi")
    template_file(settings, "n/a.txt.j2", "Hello {{ name }}")
    template_file(settings, "n/a.sms.j2", "SMS {{ name }}")
    template_file(settings, "n/a.wechat.j2", "WeChat {{ name }}")
    steps = (
        "  - id: e\n    channel: email\n    fallback: whatsapp\n    template: n/a\n"
        "  - id: w\n    channel: wechat\n    template: n/a\n"
    )
    loaded = load_campaign(write(tmp_path, minimal(steps)), settings, CATALOG)

    assert set(loaded.templates["e"]["email"].parts) == {"subject", "text"}
    assert loaded.templates["e"]["whatsapp"].parts["body"].text == "SMS {{ name }}"
    assert loaded.templates["w"]["wechat"].parts["body"].text == "WeChat {{ name }}"


def test_templates_may_use_context_names_local_names_and_defaults(tmp_path: Path, settings: Settings) -> None:
    text = (
        "{% set greeting = 'Hi' %}{{ greeting }} {{ customer.name }} {{ campaign }} {{ step }} "
        "{% for p in products %}{{ p }}{% endfor %} {{ nickname | default(name) }} {{ unsubscribe_url }}"
    )
    steps = f"  - id: s\n    channel: sms\n    content:\n      sms: |\n        {text}\n"
    # `nickname` is no customer's attribute: only an error once customers are known
    load_campaign(write(tmp_path, minimal(steps)), settings, None)
    assert problems(write(tmp_path, minimal(steps)), settings, CATALOG) == [
        (9, 9 + text.index("nickname"), "no customer has a field or attribute named 'nickname'")
    ]


def test_load_campaigns_reads_folders_and_the_same_file_only_once(tmp_path: Path, settings: Settings) -> None:
    nps_template_files(settings)
    one = write(tmp_path, NPS, "campaigns/nps.yaml")
    write(tmp_path, COMPLAINTS, "campaigns/sub/complaints.yml")
    write(tmp_path, "not: a campaign", "campaigns/readme.txt")

    loaded = load_campaigns([tmp_path / "campaigns", one], settings, CATALOG)

    assert sorted(c.id for c in loaded) == ["complaint-ack", "nps-2026q4"]


# -- YAML itself ------------------------------------------------------------------------------------------


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


def test_problems_print_as_path_line_col(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, minimal(purpose="sales"))
    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, None)
    assert str(caught.value) == f"{path}:3:10: purpose: 'sales' is not valid; write 'service' or 'marketing'"


# -- keys and types ---------------------------------------------------------------------------------------


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
            "quiet_hours, frequency_cap, throttle, on_unknown, tag, steps)",
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


def test_template_names_cannot_leave_the_templates_folder(tmp_path: Path, settings: Settings) -> None:
    steps = "  - id: a\n    channel: sms\n    template: ../secrets\n"
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings) == [
        (
            7,
            15,
            "steps[0].template: '../secrets' is not valid: template names are folders and names of letters, "
            "digits, _ and -, like nps/reminder",
        )
    ]


# -- steps ------------------------------------------------------------------------------------------------


def test_duplicate_step_ids(tmp_path: Path, settings: Settings) -> None:
    steps = "".join(f'  - id: {i}\n    channel: sms\n    content: {{sms: "x"}}\n' for i in ("a", "b", "a", "a"))
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings) == [
        (11, 9, "step id 'a' is already used on line 5"),
        (14, 9, "step id 'a' is already used on line 5"),
    ]


def test_a_step_has_content_or_template_and_errors_point_at_the_step(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        minimal(
            '  - id: both\n    channel: sms\n    content: {sms: "x"}\n    template: a/b\n'
            "  -   id: neither\n      channel: sms\n"
            "  - {id: same, channel: sms, fallback: sms, content: {sms: x}}\n"
        ),
    )
    assert problems(path, settings) == [
        (5, 5, "steps[0]: a step has either `content` (inline templates) or `template` (files), not both"),
        (9, 7, "steps[1]: a step needs `content` (inline templates) or `template` (files)"),
        (11, 5, "steps[2]: `fallback` must be a different channel from `channel`"),
    ]


def test_every_channel_a_step_may_use_needs_content(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: ask
            channel: sms
            fallback: email
            content:
              sms: "x"
          - id: mail
            channel: email
            content:
              sms: "x"
        """,
    )
    assert problems(path, settings) == [
        (7, 15, "step 'ask' falls back to email but its content has no email template"),
        (12, 5, "step 'mail' sends email but its content has no email template"),
    ]


def test_reply_needs_an_inbound_trigger_and_content_for_each_of_its_channels(
    tmp_path: Path, settings: Settings
) -> None:
    steps = '  - id: ack\n    channel: reply\n    content: {sms: "x"}\n'
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings) == [
        (6, 14, "`channel: reply` answers a customer: it needs `trigger: inbound`"),
    ]
    path = write(tmp_path, COMPLAINTS.replace('      sms: "{{ name }}您好,已收到您的反馈。"\n', ""))
    assert problems(path, settings) == [
        (12, 5, "step 'ack' replies on sms (one of the trigger's channels) but its content has no sms template")
    ]


def test_the_first_step_cannot_wait(tmp_path: Path, settings: Settings) -> None:
    steps = '  - id: a\n    after: 1d\n    channel: sms\n    content: {sms: "x"}\n'
    assert problems(write(tmp_path, minimal(steps)), settings) == [
        (6, 12, "the first step cannot wait `after` a previous one")
    ]


# -- schedule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "bad", "message"),
    [
        ("0 25 * * MON", "25", "hour '25' is not valid: the last value (25) is higher than the maximum value (23)"),
        ("61 10 * * *", "61", "minute '61' is not valid: the last value (61) is higher than the maximum value (59)"),
        ("0 10 * * FUNDAY", "FUNDAY", "day of week 'FUNDAY' is not valid: Invalid weekday name \"FUNDAY\""),
        (
            "0 10 32 * *",
            "32",
            "day of month '32' is not valid: the last value (32) is higher than the maximum value (31)",
        ),
        ("0 10 * 13 *", "13", "month '13' is not valid: the last value (13) is higher than the maximum value (12)"),
        ("*/0 * * * *", "*/0", "minute '*/0' is not valid: Increment must be higher than 0"),
    ],
)
def test_a_bad_cron_field_is_pointed_at(tmp_path: Path, settings: Settings, cron: str, bad: str, message: str) -> None:
    path = write(tmp_path, minimal(schedule=f'{{cron: "{cron}", timezone: Asia/Shanghai}}'))
    line, col = at(path, bad)
    assert problems(path, settings) == [(line, col, f"schedule.cron: {message}")]


def test_cron_needs_five_fields_and_schedules_one_kind_and_a_real_time_zone(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * *\n  timezone: Asia/Shanghai"))
    assert problems(path, settings) == [
        (
            5,
            9,
            "schedule.cron: '0 10 * *' has 4 fields; a cron expression has 5: "
            "minute hour day-of-month month day-of-week, like '0 10 * * MON'",
        )
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 60 24 * * *"))
    assert problems(path, settings) == [
        (5, 9, "schedule.cron: minute '60' is not valid: the last value (60) is higher than the maximum value (59)"),
        (5, 12, "schedule.cron: hour '24' is not valid: the last value (24) is higher than the maximum value (23)"),
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * * *\n  timezone: Mars/Olympus_Mons"))
    assert problems(path, settings) == [
        (6, 13, "schedule.timezone: 'Mars/Olympus_Mons' is not an IANA time zone (like Asia/Shanghai)")
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * * *\n  every: 1d"))
    assert problems(path, settings) == [(5, 3, "schedule: a schedule has exactly one of `cron`, `at` or `every`")]
    path = write(tmp_path, minimal(schedule="{at: next tuesday}"))
    assert problems(path, settings) == [
        (4, 16, "schedule.at: 'next tuesday' is not a date and time like 2026-01-31 10:00")
    ]


def test_a_campaign_has_a_schedule_or_a_trigger_and_the_error_points_at_the_campaign(
    tmp_path: Path, settings: Settings
) -> None:
    path = write(tmp_path, "# both\n" + COMPLAINTS.lstrip("\n") + "schedule: {every: 1d}\n")
    assert problems(path, settings) == [(2, 1, "a campaign runs on a `schedule` or on a `trigger`, not both")]


# -- templates --------------------------------------------------------------------------------------------


def test_a_template_that_does_not_parse_in_each_scalar_style(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            fallback: sms
            content:
              sms: "Hello {{ name }"
              email:
                subject: Hello {% if %}
                text: |
                  Dear {{ name }},

                  {% for p in products %}{{ p }}
                  Bye
                html: >
                  <p>Dear {{ name }},
                  {{ name | nosuchfilter }}</p>
          - id: b
            channel: wechat
            content: {wechat: 'It''s {{ name }} {{ }}'}
        """,
    )
    assert problems(path, settings) == [
        (9, 13, "template does not parse: unexpected '}'"),
        (11, 18, "template does not parse: Expected an expression, got 'end of statement block'"),
        # line 3 of the template, where the unclosed loop starts, mapped into the literal block
        (15, 11, "template does not parse: Unexpected end of template. Jinja was looking for the following tags: "
         "'endfor' or 'else'. The innermost block that needs to be closed is 'for'."),
        # a folded block is one template line: the error is placed at its start
        (18, 11, "template error: No filter named 'nosuchfilter'."),
        (22, 24, "template does not parse: Expected an expression, got 'end of print statement'"),
    ]  # fmt: skip


def test_sandbox_escapes_are_refused_at_the_exact_column(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            fallback: sms
            content:
              sms: "{{ name.__class__.__mro__ }}"
              email:
                subject: Hi {{ cycler['__init__'] }}
                text: |
                  Dear {{ name }},
                  {{ name | attr('__class__') }} {% set _secret = 1 %}
                html: >
                  <p>Dear {{ name }},
                  folded {{ customer.__dict__ }}</p>
          - id: b
            channel: wechat
            content: {wechat: 'It''s {{ x["__globals__"] }}'}
          - id: c
            channel: whatsapp
            content:
              whatsapp: "\\"{{ name }}\\" \\u4e2d {{ name._x }}"
        """,
    )
    found = problems(path, settings)
    assert found == [
        (*at(path, "__class__"), "templates may not use names starting with _ ('__class__')"),
        (*at(path, "__mro__"), "templates may not use names starting with _ ('__mro__')"),
        (*at(path, "__init__"), "templates may not use names starting with _ ('__init__')"),
        (*at(path, "__class__", 2), "templates may not use names starting with _ ('__class__')"),
        (*at(path, "_secret"), "templates may not use names starting with _ ('_secret')"),
        (*at(path, "__dict__"), "templates may not use names starting with _ ('__dict__')"),
        (*at(path, "__globals__"), "templates may not use names starting with _ ('__globals__')"),
        (*at(path, "_x"), "templates may not use names starting with _ ('_x')"),
    ]
    assert [(line, col) for line, col, _ in found[:3]] == [(9, 21), (9, 31), (11, 32)]


def test_templates_cannot_include_other_templates(tmp_path: Path, settings: Settings) -> None:
    steps = "  - id: a\n    channel: sms\n    content:\n      sms: |\n        Hi\n        {% include 'x.j2' %}\n"
    assert problems(write(tmp_path, minimal(steps)), settings) == [
        (10, 9, "templates cannot include, import or extend other templates")
    ]


def test_unknown_template_variables_only_once_customers_are_known(tmp_path: Path, settings: Settings) -> None:
    path = write(
        tmp_path,
        """
        id: c1
        name: Test
        purpose: service
        steps:
          - id: a
            channel: email
            content:
              email:
                subject: "{{ name }}, {{ nmae }} and {{ nmae }} again"
                text: >-
                  Dear {{ name }}, your balance is
                  {{ balance }} and your age {{ age }}.

                  Regards, {{ branch.manager }}
        """,
    )
    load_campaign(path, settings, None)
    load_campaign(path, settings, {})  # an empty store knows no attributes yet
    assert problems(path, settings, CATALOG) == [
        (9, 34, "no customer has a field or attribute named 'nmae'"),
        (12, 14, "no customer has a field or attribute named 'balance'"),
        (14, 23, "no customer has a field or attribute named 'branch'"),
    ]


# -- segments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "needle", "message"),
    [
        ('"status == \'active\' and foo.bar == 1"', "foo.bar", "attribute access (a.b) is not allowed in a segment"),
        ("status == 'active' and open('x') == 1", "open", "the only function a segment may call is days_ago(N)"),
        ("\"city == '上海' and __import__('os')\"", "__import__",
         "the only function a segment may call is days_ago(N), in a comparison"),
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
        (6, 3, "segment: no customer has a field or attribute named 'citty'"),
        (10, 21, "steps[0].only_if: 'age' holds number values; it cannot be compared with 'eighteen'"),
    ]


# -- template files ---------------------------------------------------------------------------------------


def test_missing_template_files_are_named_at_the_template_key(tmp_path: Path, settings: Settings) -> None:
    template_file(settings, "nps/reminder.subject.j2", "Hi")
    steps = (
        "  - id: a\n    channel: email\n    fallback: sms\n    template: nps/reminder\n"
        "  - id: b\n    channel: wechat\n    template: nps/other\n"
    )
    path = write(tmp_path, minimal(steps))
    root = settings.templates_dir
    assert problems(path, settings) == [
        (8, 15, f"email needs the template file {root / 'nps/reminder.txt.j2'}, which does not exist"),
        (8, 15, f"sms needs the template file {root / 'nps/reminder.sms.j2'}, which does not exist"),
        (11, 15, f"wechat needs the template file {root / 'nps/other.wechat.j2'} (or {root / 'nps/other.sms.j2'}), "
         "which does not exist"),
    ]  # fmt: skip


def test_problems_in_template_files_point_into_the_file(tmp_path: Path, settings: Settings) -> None:
    subject = template_file(settings, "nps/reminder.subject.j2", "Hello {{ name }\n")
    text = template_file(settings, "nps/reminder.txt.j2", "Dear {{ name }},\n\n  see {{ name.__class__ }}\n")
    html = template_file(settings, "nps/reminder.html.j2", "<p>{{ name }}</p>\n<p>{{ nickname }}</p>\n")
    sms = template_file(settings, "nps/reminder.sms.j2", "{% if name %}\nHi\n")
    steps = "  - id: r\n    channel: email\n    fallback: sms\n    template: nps/reminder\n"
    path = write(tmp_path, minimal(steps))

    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, CATALOG)

    assert [(p.path, p.line, p.col, p.message) for p in caught.value.problems] == [
        (str(html), 2, 7, "no customer has a field or attribute named 'nickname'"),
        (str(sms), 1, None, "template does not parse: Unexpected end of template. Jinja was looking for the "
         "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."),
        (str(subject), 1, None, "template does not parse: unexpected '}'"),
        (str(text), 3, 15, "templates may not use names starting with _ ('__class__')"),
    ]  # fmt: skip
    assert str(caught.value).splitlines()[0] == f"{html}:2:7: no customer has a field or attribute named 'nickname'"


def test_a_template_file_that_is_not_utf8(tmp_path: Path, settings: Settings) -> None:
    sms = template_file(settings, "t.sms.j2", "")
    sms.write_bytes("Grüße {{ name }}".encode("latin-1"))
    path = write(tmp_path, minimal("  - id: a\n    channel: sms\n    template: t\n"))
    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, None)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (str(sms), None)
    assert problem.message.startswith("cannot read template file: invalid")


# -- several problems, several files ------------------------------------------------------------------------


def test_one_file_reports_all_its_problems(tmp_path: Path, settings: Settings) -> None:
    """A wrong field does not hide the segment, schedule, step and template problems of the same file."""
    path = write(
        tmp_path,
        """
        id: C1
        name: Test
        purpose: sales
        segment: "age >= 18 and"
        schedule: {cron: "0 10 * * *", timezone: Asia/Shanghai}
        trigger:
          inbound: {channels: [sms], match: "stop"}
        steps:
          - id: a
            channel: sms
            content: {sms: "{{ name.__class__ }}"}
          - id: a
            channel: fax
            content: {sms: "x"}
          - id: c
            channel: reply
            content: {sms: "{{ name }"}
          - id: d
            channel: email
            content: {sms: "x"}
        """,
    )
    assert problems(path, settings) == [
        (1, 1, "a campaign runs on a `schedule` or on a `trigger`, not both"),
        (1, 5, "id: 'C1' is not valid: ids are lowercase letters, digits and -, starting with a letter or digit "
         "(at most 64)"),
        (3, 10, "purpose: 'sales' is not valid; write 'service' or 'marketing'"),
        (4, 24, "segment does not parse: invalid syntax"),
        (*at(path, "__class__"), "templates may not use names starting with _ ('__class__')"),
        (12, 9, "step id 'a' is already used on line 9"),
        (13, 14, "steps[1].channel: 'fax' is not valid; write 'sms', 'email', 'whatsapp', 'wechat' or 'reply'"),
        (17, 21, "template does not parse: unexpected '}'"),
        (20, 5, "step 'd' sends email but its content has no email template"),
    ]  # fmt: skip


def test_load_campaigns_reports_every_file_and_ids_used_twice(tmp_path: Path, settings: Settings) -> None:
    first = write(tmp_path, minimal(), "campaigns/a.yaml")
    second = write(tmp_path, "# copy\n" + minimal(), "campaigns/b.yaml")
    broken = write(tmp_path, minimal(purpose="sales", id="c2"), "campaigns/c.yaml")
    other = write(tmp_path, minimal(id="c3"), "other.yaml")

    with pytest.raises(InputError) as caught:
        load_campaigns([tmp_path / "campaigns", other], settings, None)

    assert [(p.path, p.line, p.col, p.message) for p in caught.value.problems] == [
        (str(second), 2, 5, f"campaign id 'c1' is also used by {first}:1"),
        (str(broken), 3, 10, "purpose: 'sales' is not valid; write 'service' or 'marketing'"),
    ]


# -- positions inside strings, whatever style the YAML writer chose -------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from([*"ab z:#-'\"\\\t\n,[]&*!|>%@`", "中", "é", "😀"]), max_size=40)
_STYLES = {
    "plain": str,
    "double": DoubleQuotedScalarString,
    "single": SingleQuotedScalarString,
    "literal": LiteralScalarString,
    "folded": FoldedScalarString,
}


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_TEXT, after=_TEXT, style=st.sampled_from(sorted(_STYLES)), width=st.sampled_from([20, 4096]))
def test_a_template_error_lands_on_the_right_character_in_every_scalar_style(
    tmp_path: Path, settings: Settings, before: str, after: str, style: str, width: int
) -> None:
    template = before + "{{ x.__secret }}" + after
    yaml = YAML()
    yaml.width = width
    document = {
        "id": "c1",
        "name": "Test",
        "purpose": "service",
        "steps": [{"id": "a", "channel": "sms", "content": {"sms": _STYLES[style](template)}}],
    }
    path = tmp_path / "generated.yaml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)

    [(line, col, message)] = problems(path, settings)

    assert message == "templates may not use names starting with _ ('__secret')"
    assert col is not None and line is not None
    source_line = path.read_text(encoding="utf-8").split("\n")[line - 1]
    assert source_line[col - 1 :].startswith("__secret"), (source_line, col)


# -- expects (survey answers) -----------------------------------------------------------------------------


def test_expects_declares_a_survey_or_keywords(tmp_path: Path, settings: Settings) -> None:
    ok = '  - id: a\n    channel: sms\n    expects: {survey: csat, within: 2d}\n    content: {sms: "1-5?"}\n'
    loaded = load_campaign(write(tmp_path, minimal(ok)), settings, None)
    expects = loaded.campaign.steps[0].expects
    assert expects is not None and (expects.attribute_name, expects.attribute_type) == ("csat_score", "number")

    cases = {
        "{survey: nps, keywords: {'1': yes}, attribute: x}": "exactly one of `survey`",
        "{keywords: {'1': interested}}": "needs `attribute`",
        "{survey: stars}": "nps",
        "{survey: nps, within: soon}": "duration",
        "{survey: nps, attribute: email}": "core field",
        "{survey: nps, attribute: 9lives}": "is not valid",
    }
    for i, (value, message) in enumerate(cases.items()):
        steps = f'  - id: a\n    channel: sms\n    expects: {value}\n    content: {{sms: "?"}}\n'
        path = write(tmp_path, minimal(steps), f"bad-{i}.yaml")
        found = problems(path, settings)
        assert len(found) == 1, (value, found)
        line, _col, text = found[0]
        assert line == 7 and message in text, (value, found)


def test_an_answer_attribute_must_keep_the_type_customers_have(tmp_path: Path, settings: Settings) -> None:
    steps = '  - id: a\n    channel: sms\n    expects: {survey: nps, attribute: segment}\n    content: {sms: "?"}\n'
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings, {"segment": "string"}) == [
        (
            at(path, "segment")[0],
            at(path, "segment")[1],
            "the answers are a number but the attribute 'segment' holds a string",
        )
    ]
    assert load_campaign(path, settings, {"segment": "number"}).campaign.steps[0].expects is not None


def test_unless_needs_after_and_clicked_is_not_tracked_yet(tmp_path: Path, settings: Settings) -> None:
    steps = (
        '  - id: a\n    channel: sms\n    content: {sms: "x"}\n'
        '  - id: b\n    channel: sms\n    unless: clicked\n    after: 1d\n    content: {sms: "y"}\n'
        '  - id: c\n    channel: sms\n    unless: replied\n    content: {sms: "z"}\n'
    )
    path = write(tmp_path, minimal(steps))
    assert problems(path, settings) == [
        (10, 13, "`unless: clicked` needs click tracking, which outreach does not do yet"),
        (15, 13, "`unless` needs `after`: it looks at the step before this one"),
    ]


def test_quiet_hours_off_is_for_service_campaigns_only(tmp_path: Path, settings: Settings) -> None:
    service = write(tmp_path, minimal(quiet_hours="off"), "service.yaml")
    assert load_campaign(service, settings, None).campaign.quiet_hours == "off"
    marketing = write(tmp_path, minimal(quiet_hours="off", purpose="marketing"), "marketing.yaml")
    [(_, _, message)] = problems(marketing, settings)
    assert "marketing always keeps quiet hours" in message
