"""Campaign steps: unique ids, content or a template for every channel a step may use, replies to inbound
messages, waiting with `after` and `unless`, and the answers a step `expects`."""

from __future__ import annotations

from pathlib import Path

from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from tests.campaign_files import COMPLAINTS, at, minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


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
