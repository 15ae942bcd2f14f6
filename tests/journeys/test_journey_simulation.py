"""A weekly survey with a reminder three and a half days later, run for simulated weeks on the engine's own
clock, with the scheduler restarted at random moments: every customer gets each message once, never inside
quiet hours or on a holiday, never over the cap, reminders only to those who did not answer and after the
right delay, each customer in one A/B variant."""

from __future__ import annotations

import random
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from outreach.inbound.responses import InboundMessage, file_inbound
from outreach.journeys.scheduler import SchedulerCore
from outreach.store.database import shift_clock, utcnow
from outreach.store.ledger import Status
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

SHANGHAI = ZoneInfo("Asia/Shanghai")

CUSTOMERS = """
    id,name,phone,country,email,timezone,consent_sms,consent_email
    w1,Ann,+14155550301,US,ann@example.com,America/New_York,yes,yes
    w2,Ben,+14155550302,US,ben@example.com,America/Los_Angeles,yes,yes
    w3,Cao,13800138301,CN,cao@example.cn,Asia/Shanghai,yes,yes
    w4,Dee,13800138302,CN,dee@example.cn,,yes,yes
    w5,Eve,+4915112345301,DE,eve@example.de,Europe/Berlin,yes,yes
"""

WEEKLY = """
    id: weekly-pulse
    name: Weekly pulse
    purpose: marketing
    schedule: {cron: "0 10 * * MON", timezone: Asia/Shanghai}
    quiet_hours: {start: "21:00", end: "08:00"}
    frequency_cap: {max: 3, per: 7d}
    throttle: 5/s
    steps:
      - id: ask
        channel: sms
        expects: {survey: nps}
        variants:
          - id: plain
            content:
              sms: "{{ name }}, how are we doing? Reply 0-10."
          - id: warm
            content:
              sms: "Dear {{ name }}, we would love your view: reply 0-10."
      - id: remind
        after: 3d11h
        unless: replied
        channel: email
        content:
          email: {subject: "{{ name }}, one question", text: "Reply with a score from 0 to 10."}
"""


def quiet(moment: datetime, zone: str | None) -> bool:
    local = moment.astimezone(ZoneInfo(zone) if zone else SHANGHAI).time()
    return local.hour >= 21 or local.hour < 8


def test_weeks_of_a_weekly_survey_with_restarts(
    pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any, clock: None
) -> None:
    p = pipeline
    folder = p.folder / "campaigns"
    folder.mkdir()
    (folder / "weekly.yaml").write_text(textwrap.dedent(WEEKLY).lstrip(), encoding="utf-8")
    holidays = p.folder / "holidays.yaml"
    holidays.write_text("CN:\n  - 2027-01-11\n", encoding="utf-8")  # the second Monday, in China only
    p.settings = replace(p.settings, campaigns_dir=folder, schedule_grace="2h", holidays_file=holidays)
    p.import_csv(CUSTOMERS)
    zones = {"w1": "America/New_York", "w2": "America/Los_Angeles", "w3": "Asia/Shanghai", "w4": None}
    zones["w5"] = "Europe/Berlin"
    phones = {"w1": "+14155550301", "w3": "+8613800138301"}

    start = datetime(2027, 1, 4, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)  # a Monday, before the 10:00 firing
    shift_clock(start - datetime.now(UTC))
    rng = random.Random(20261129)
    p.handle.start_worker(2)
    core = SchedulerCore(p.engine, p.settings, p.handle.transport)
    restarts = 0
    answered: set[tuple[str, str]] = set()
    end = start + timedelta(weeks=4)
    while utcnow() < end:
        if rng.random() < 0.1:  # the scheduler process is replaced: nothing of it survives but the database
            core = SchedulerCore(p.engine, p.settings, p.handle.transport)
            restarts += 1
        core.tick()
        p.deliver_queued()
        # w1 and w3 answer the survey on the day it arrives
        for row in p.rows(step_id="ask", status=Status.SENT):
            key = (row["customer_id"], row["occurrence"])
            if row["customer_id"] in phones and key not in answered:
                message = InboundMessage("sms", f"SM{len(answered):032d}", phones[row["customer_id"]], "9")
                file_inbound(p.engine, message, p.settings)
                answered.add(key)
        shift_clock(utcnow() + timedelta(minutes=rng.randint(20, 90)) - datetime.now(UTC))

    assert restarts >= 3
    rows = p.rows()
    occurrences = sorted({r["occurrence"] for r in rows})
    assert occurrences == ["2027-01-04T02:00Z", "2027-01-11T02:00Z", "2027-01-18T02:00Z", "2027-01-25T02:00Z"]
    asks = Counter((r["customer_id"], r["occurrence"]) for r in rows if r["step_id"] == "ask")
    assert set(asks.values()) == {1} and len(asks) == 5 * 4
    assert all(r["status"] == Status.SENT for r in rows if r["step_id"] == "ask")
    reminders = {(r["customer_id"], r["occurrence"]): r for r in rows if r["step_id"] == "remind"}
    # the last week's reminders are not due yet when the simulation ends (Monday + 3d11h > 4 weeks)
    for customer in ("w2", "w4", "w5"):
        for occurrence in occurrences:
            assert (customer, occurrence) in reminders, (customer, occurrence)
    assert not any(customer in phones for customer, _ in reminders)

    # what arrived: one SMS per customer per week, one reminder per non-answering customer per week
    assert len(twilio_server.accepted()) == 5 * 4
    emails = ["ann@example.com", "ben@example.com", "cao@example.cn", "dee@example.cn", "eve@example.de"]
    assert sum(len(smtp_server.handler.to(address)) for address in emails) == len(reminders) == 3 * 4
    ask_sent = {(r["customer_id"], r["occurrence"]): r["sent_at"] for r in rows if r["step_id"] == "ask"}
    for key, reminder in reminders.items():
        assert reminder["status"] == Status.SENT
        assert reminder["sent_at"] >= ask_sent[key] + timedelta(days=3, hours=11)
    for row in rows:
        assert not quiet(row["sent_at"], zones[row["customer_id"]]), row
    # reminders due in the middle of the night waited for the morning
    assert any(r["not_before"] is not None for r in reminders.values())
    # nothing to China on its holiday: the second week's question waited for Tuesday morning there
    countries = {"w1": "US", "w2": "US", "w3": "CN", "w4": "CN", "w5": "DE"}
    for row in rows:
        day = row["sent_at"].astimezone(ZoneInfo(zones[row["customer_id"]] or "Asia/Shanghai")).date()
        assert not (countries[row["customer_id"]] == "CN" and day.isoformat() == "2027-01-11"), row
    held = p.row("w3", step_id="ask", occurrence="2027-01-11T02:00Z")
    assert held["sent_at"].astimezone(SHANGHAI).replace(tzinfo=None) >= datetime(2027, 1, 12, 8, 0)
    # never over the cap: at most 3 marketing messages in any 7 days
    for customer in zones:
        times = sorted(r["sent_at"] for r in rows if r["customer_id"] == customer)
        for i, first in enumerate(times):
            assert sum(1 for t in times[i:] if t < first + timedelta(days=7)) <= 3
    # each customer kept one variant, and the report compares them
    variants = {(r["customer_id"], r["variant"]) for r in rows if r["step_id"] == "ask"}
    assert len(variants) == 5
    with p.engine.connect() as conn:
        from outreach.reports.campaign_report import campaign_report

        report = campaign_report(conn, "weekly-pulse")
    assert report is not None and report["variants"]
