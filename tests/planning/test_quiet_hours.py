"""Quiet hours and holidays: deferred, never dropped, in each customer's own time zone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from outreach.core.errors import InputError
from outreach.delivery.deferred import release_due
from outreach.planning.planner import plan_campaign
from outreach.planning.quiet_hours import QuietWindow, SendingHours, load_holidays
from outreach.store.ledger import Status
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

NIGHT = QuietWindow.parse("21:00", "08:00")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("local", "expected_local"),
    [
        ((2026, 3, 10, 12, 0), None),  # midday: goes now
        ((2026, 3, 10, 20, 59), None),
        ((2026, 3, 10, 21, 0), (2026, 3, 11, 8, 0)),  # the evening: next morning
        ((2026, 3, 10, 23, 30), (2026, 3, 11, 8, 0)),
        ((2026, 3, 11, 0, 15), (2026, 3, 11, 8, 0)),  # after midnight: this morning
        ((2026, 3, 11, 7, 59), (2026, 3, 11, 8, 0)),
        ((2026, 3, 11, 8, 0), None),
    ],
)
def test_a_window_across_midnight(local: tuple[int, ...], expected_local: tuple[int, ...] | None) -> None:
    hours = SendingHours(NIGHT, SHANGHAI)
    at = datetime(*local, tzinfo=SHANGHAI)  # type: ignore[misc]
    got = hours.not_before(at.astimezone(UTC), None, None)
    if expected_local is None:
        assert got is None
    else:
        assert got == datetime(*expected_local, tzinfo=SHANGHAI)  # type: ignore[misc]
        assert got is not None and got.tzinfo is not None


def test_each_customer_keeps_their_own_time_zone() -> None:
    hours = SendingHours(NIGHT, SHANGHAI)
    at = utc(2026, 3, 10, 14, 0)  # 22:00 in Shanghai, 10:00 in New York, 15:00 in Berlin
    assert hours.not_before(at, None, None) == datetime(2026, 3, 11, 8, 0, tzinfo=SHANGHAI)  # campaign's zone
    assert hours.not_before(at, "America/New_York", "US") is None
    assert hours.not_before(at, "Europe/Berlin", "DE") is None
    assert hours.not_before(at, "Not/AZone", None) == datetime(2026, 3, 11, 8, 0, tzinfo=SHANGHAI)


def test_a_window_ending_on_the_morning_clocks_change() -> None:
    """New York springs forward on 2026-03-08 at 02:00: a window ending 02:30 ends at 03:30 (EDT) that day."""
    ny = ZoneInfo("America/New_York")
    hours = SendingHours(QuietWindow.parse("22:00", "02:30"), ny)
    got = hours.not_before(datetime(2026, 3, 7, 23, 0, tzinfo=ny).astimezone(UTC), None, None)
    assert got is not None
    assert got.astimezone(ny).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)
    assert got == utc(2026, 3, 8, 7, 30)


def test_holidays_hold_until_the_next_working_morning() -> None:
    holidays = {"CN": frozenset({date(2026, 10, 1), date(2026, 10, 2)})}
    hours = SendingHours(NIGHT, SHANGHAI, holidays)
    at = datetime(2026, 9, 30, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert hours.not_before(at, "Asia/Shanghai", "CN") == datetime(2026, 10, 3, 8, 0, tzinfo=SHANGHAI)
    assert hours.not_before(at, "Asia/Shanghai", "US") == datetime(2026, 10, 1, 8, 0, tzinfo=SHANGHAI)
    without_window = SendingHours(None, SHANGHAI, holidays)
    noon = datetime(2026, 10, 1, 12, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert without_window.not_before(noon, None, "cn") == datetime(2026, 10, 3, 0, 0, tzinfo=SHANGHAI)


def test_holidays_file_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text("CN:\n  - 2026-10-01\n  - 2026-13-01\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_holidays(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:3:5: '2026-13-01' is not a date (YYYY-MM-DD)"]
    path.write_text("CN:\n  - 2026-10-01\n  - soon\nChina: [2026-10-01]\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_holidays(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:3:5: 'soon' is not a date (YYYY-MM-DD)",
        f"{path}:4:1: 'China' is not a two-letter country code",
    ]
    assert load_holidays(tmp_path / "missing.yaml") == {}


NIGHT_CAMPAIGN = """
    id: night
    name: Night promo
    purpose: marketing
    quiet_hours: {{start: "{start}", end: "{end}"}}
    steps:
      - id: offer
        channel: email
        content:
          email: {{subject: "Offer for {{{{ name }}}}", text: "Hello {{{{ name }}}}"}}
"""


def test_a_delivery_inside_quiet_hours_waits_and_then_goes(
    pipeline: Pipeline, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    p = pipeline
    p.import_csv(
        """
        id,name,email,timezone,consent_email
        q1,Ann,ann@example.com,UTC,yes
        q2,Ben,ben@example.com,,yes
        """
    )
    now = datetime.now(UTC)
    # a window from an hour ago to an hour from now, in UTC: everyone is inside it right now
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    loaded = p.load(p.campaign(NIGHT_CAMPAIGN.format(start=start, end=end)))
    sent: list[tuple[list[int], int]] = []

    class Recorder:  # what the planner hands the broker
        def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None:
            sent.append((list(ids), delay_ms))

    plan = plan_campaign(p.engine, loaded, p.settings, dry_run=False, transport=Recorder())
    assert plan.steps[0].deferred == 2
    [(ids, delay_ms)] = sent  # one broker message, delayed to the end of the window
    assert sorted(ids) == sorted(plan.row_ids)
    assert 3_500_000 < delay_ms <= 3_600_000
    rows = {r["customer_id"]: r for r in p.rows()}
    for row in rows.values():
        assert row["status"] == Status.QUEUED and row["not_before"] > now
    assert smtp_server.handler.to("ann@example.com") == []

    # the night passes (the rows' moment moved into the past); say the broker lost the delayed message: the
    # scheduler's release hands the rows to the workers again
    p.handle.start_worker(2)
    with p.engine.begin() as conn:
        from outreach.store.schema import deliveries

        conn.execute(
            deliveries.update().values(enqueued_at=now - timedelta(hours=9), not_before=now - timedelta(seconds=1))
        )
    assert release_due(p.engine, p.handle.transport, datetime.now(UTC), 100) == 2
    p.deliver_queued()
    assert [r["status"] for r in p.rows()] == [Status.SENT, Status.SENT]
    assert len(smtp_server.handler.to("ann@example.com")) == 1
    assert release_due(p.engine, p.handle.transport, datetime.now(UTC), 100) == 0


def test_configured_default_quiet_hours_and_holidays_apply(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    today = datetime.now(UTC).date()
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(f"US:\n  - {today.isoformat()}\n", encoding="utf-8")
    p.settings = replace(p.settings, holidays_file=holidays)
    p.import_csv(
        """
        id,name,email,country,timezone,consent_email
        h1,Ann,ann@example.com,US,UTC,yes
        h2,Ben,ben@example.com,CN,UTC,yes
        """
    )
    campaign = """
        id: promo
        name: Promo
        purpose: marketing
        steps:
          - id: offer
            channel: email
            content:
              email: {subject: "Hi {{ name }}", text: "Hello {{ name }}"}
        """
    delayed: list[int] = []

    class NowOnly:  # the broker, minus the delayed messages (a test cannot wait for tomorrow)
        def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None:
            if delay_ms:
                delayed.extend(ids)
            else:
                p.handle.transport.enqueue(ids, 0)

    p.handle.start_worker(2)
    plan: Any = plan_campaign(p.engine, p.load(p.campaign(campaign)), p.settings, dry_run=False, transport=NowOnly())
    p.deliver_queued()
    assert (plan.steps[0].deferred, plan.steps[0].deferred_by) == (1, {"holiday": 1})
    assert delayed == [p.row("h1")["id"]]
    assert p.row("h1")["not_before"] == datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    assert p.row("h2")["status"] == Status.SENT


def test_marketing_and_surveys_keep_quiet_hours_by_default_and_other_service_does_not() -> None:
    from outreach.campaigns.model import Campaign
    from outreach.core.settings import Settings
    from outreach.planning.quiet_hours import quiet_hours_warning, sending_hours

    step = {"id": "a", "channel": "sms", "content": {"sms": "x"}}
    survey_step = {**step, "expects": {"survey": "nps"}}
    otp = Campaign(id="otp", name="OTP", purpose="service", quiet_hours="off", steps=[step])  # type: ignore[arg-type]
    notice = Campaign(id="notice", name="Notice", purpose="service", steps=[step])  # type: ignore[arg-type]
    survey = Campaign(id="nps", name="NPS", purpose="service", steps=[survey_step])  # type: ignore[arg-type]
    offer = Campaign(id="offer", name="Offer", purpose="marketing", steps=[step])  # type: ignore[arg-type]
    night = datetime(2026, 3, 10, 23, 0, tzinfo=SHANGHAI).astimezone(UTC)
    morning = datetime(2026, 3, 11, 8, 0, tzinfo=SHANGHAI)

    defaults = Settings(default_timezone="Asia/Shanghai")
    assert sending_hours(offer, defaults).not_before(night, None, "CN") == morning
    assert sending_hours(survey, defaults).hold(night, None, "CN") == (morning, "quiet_hours")
    assert sending_hours(survey, defaults).describe() == "21:00-08:00 (the quiet_hours setting)"
    assert sending_hours(notice, defaults).not_before(night, None, "CN") is None
    assert sending_hours(notice, defaults).describe() == 'none (the quiet_hours_service setting is "")'
    assert quiet_hours_warning(defaults) is None

    service_too = Settings(quiet_hours_service="21:00-08:00", default_timezone="Asia/Shanghai")
    assert sending_hours(notice, service_too).not_before(night, None, "CN") == morning
    assert sending_hours(otp, service_too).not_before(night, None, "CN") is None
    assert sending_hours(otp, service_too).describe() == "none (the campaign says quiet_hours: off)"

    off = Settings(quiet_hours="", default_timezone="Asia/Shanghai")
    assert sending_hours(offer, off).not_before(night, None, "CN") is None
    warning = quiet_hours_warning(off, offer)
    assert warning is not None and warning.startswith('quiet_hours is "" (off): campaign offer\'s messages go')
    assert quiet_hours_warning(off, notice) is None  # it never kept the setting
    with pytest.raises(InputError, match="quiet_hours: '9pm-8am': write the quiet window as HH:MM-HH:MM"):
        sending_hours(offer, Settings(quiet_hours="9pm-8am"))


def _zone_where_it_is(hour: int) -> str:
    """A fixed-offset zone whose local hour is now `hour` (give or take the minutes this test takes)."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT+7 is seven hours behind UTC


def test_plan_and_run_say_what_the_default_quiet_hours_deferred(desk: Any) -> None:
    desk.write(
        "customers.csv",
        "id,name,email,timezone,consent_email\n"
        f"Q1,Night Owl,owl@example.com,{_zone_where_it_is(3)},yes\n"
        f"Q2,Day Lark,lark@example.com,{_zone_where_it_is(12)},yes\n",
    )
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "offer.yaml",
        """
        id: offer
        name: Offer
        purpose: marketing
        steps:
          - id: tell
            channel: email
            content: {email: {subject: "Hello {{ name }}", text: "An offer."}}
        """,
    )
    del desk.env["OUTREACH_QUIET_HOURS"]  # the default: what a new installation does
    plan = desk.json("campaigns", "plan", "offer.yaml")
    assert plan["quiet_hours"] == "21:00-08:00 (the quiet_hours setting)"
    assert (plan["steps"][0]["deferred"], plan["steps"][0]["deferred_by"]) == (1, {"quiet_hours": 1})
    shown = desk.ok("campaigns", "run", "offer.yaml", COLUMNS="200")
    assert "quiet hours: 21:00-08:00 (the quiet_hours setting), in each customer's time zone" in shown.stdout
    assert "of which deferred by quiet hours │ 1" in shown.stdout
    assert "warning: quiet_hours" not in shown.stderr
    assert [m["message"]["To"] for m in desk.outbox("email")] == ["lark@example.com"]

    # turned off: nothing waits, and the command says so
    off = desk.run("campaigns", "plan", "offer.yaml", "--json", OUTREACH_QUIET_HOURS="")
    assert json.loads(off.stdout)["steps"][0]["deferred"] == 0
    assert 'warning: quiet_hours is "" (off): campaign offer\'s messages go at any hour' in off.stderr
