"""Loading campaign files: the contract's two examples with their templates, folders read once per file, and
problems reported as PATH:LINE:COL, all of a file's at once and every file's."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.campaigns.loading import LoadedCampaign, load_campaign, load_campaigns
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.store.fields import AttributeType
from tests.campaign_files import CATALOG, COMPLAINTS, at, minimal, problems, template_file, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name

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


def nps_template_files(settings: Settings) -> None:
    template_file(settings, "nps/reminder.subject.j2", "{{ name }}, a reminder\n")
    template_file(settings, "nps/reminder.txt.j2", "Dear {{ name }},\nplease rate us: {{ unsubscribe_url }}\n")
    template_file(settings, "nps/reminder.html.j2", "<p>Dear {{ name }}</p>\n")


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


def test_load_campaigns_reads_folders_and_the_same_file_only_once(tmp_path: Path, settings: Settings) -> None:
    nps_template_files(settings)
    one = write(tmp_path, NPS, "campaigns/nps.yaml")
    write(tmp_path, COMPLAINTS, "campaigns/sub/complaints.yml")
    write(tmp_path, "not: a campaign", "campaigns/readme.txt")

    loaded = load_campaigns([tmp_path / "campaigns", one], settings, CATALOG)

    assert sorted(c.id for c in loaded) == ["complaint-ack", "nps-2026q4"]


def test_problems_print_as_path_line_col(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, minimal(purpose="sales"))
    with pytest.raises(InputError) as caught:
        load_campaign(path, settings, None)
    assert str(caught.value) == f"{path}:3:10: purpose: 'sales' is not valid; write 'service' or 'marketing'"


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
