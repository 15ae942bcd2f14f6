"""Rendering at send time: a real run keeps each step's content as planned, the worker renders each row from
it, and the ledger holds exactly what was sent, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from outreach.planning.planned_events import planned_event
from outreach.store.ledger import Status
from outreach.store.schema import events, planned_contents
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

CUSTOMERS = """
    id,name,email,locale,consent_email,city
    p1,王芳,wang@example.cn,zh-CN,yes,上海
    p2,Bob,bob@example.com,en,yes,
    p3,Amy,amy@example.com,en,yes,Boston
"""

NOTICE = """
    id: notice
    name: Branch notice
    purpose: service
    steps:
      - id: tell
        channel: email
        content:
          email:
            subject: "{{ name }}: your branch in {{ city }}"
            text: "Dear {{ name }}, your branch in {{ city }} moves next week."
"""


def _contents(p: Pipeline) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(planned_contents)).scalar_one())


def test_rows_are_rendered_from_the_content_planned_and_keep_what_was_sent(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(NOTICE)
    plan = p.run(path, deliver=False)
    assert sum(plan.steps[0].by_channel.values()) == 3
    assert plan.steps[0].samples[0]["subject"] == "王芳: your branch in 上海"
    queued = {r["customer_id"]: r for r in p.rows()}
    assert {r["status"] for r in queued.values()} == {Status.QUEUED}
    assert all(r["body"] is None and r["content_id"] is not None for r in queued.values())

    # The file changes after planning: what was planned is what goes.
    path.write_text(path.read_text(encoding="utf-8").replace("moves next week", "is closed"), encoding="utf-8")
    p.deliver_queued()

    rows = {r["customer_id"]: r for r in p.rows()}
    sent = {m.message["To"]: m.message for m in smtp_server.handler.received}
    assert set(sent) == {"wang@example.cn", "amy@example.com"}
    for customer, address in (("p1", "wang@example.cn"), ("p3", "amy@example.com")):
        row, mail = rows[customer], sent[address]
        assert row["status"] == Status.SENT
        assert row["subject"] == mail["Subject"]
        assert row["body"] == mail.get_body(("plain",)).get_content().strip()
        assert "moves next week" in row["body"]
    # p2 has no city: nothing went, and the row says why, as a dry run would have said beforehand.
    assert (rows["p2"]["status"], rows["p2"]["reason"]) == (Status.SUPPRESSED, "missing_data")
    assert "city" in rows["p2"]["detail"] and rows["p2"]["body"] is None


def test_the_same_content_is_kept_once_and_a_changed_one_again(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(NOTICE)
    p.run(path, "first", deliver=False)
    p.run(path, "second", deliver=False)
    assert _contents(p) == 1
    path.write_text(path.read_text(encoding="utf-8").replace("moves next week", "is closed"), encoding="utf-8")
    p.run(path, "third", deliver=False)
    assert _contents(p) == 2
    p.deliver_queued()
    bodies: dict[str, set[Any]] = {}
    for row in p.rows(status=Status.SENT):
        bodies.setdefault(row["occurrence"], set()).add("is closed" in row["body"])
    assert bodies == {"first": {False}, "second": {False}, "third": {True}}


def test_a_dry_run_writes_no_content(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    plan = p.plan(p.campaign(NOTICE))
    assert dict(plan.steps[0].suppressed) == {"missing_data": 1}
    assert _contents(p) == 0 and p.rows() == []


QUIET = """
    id: quiet
    name: Quiet notice
    purpose: marketing
    quiet_hours: {{start: "{start}", end: "{end}"}}
    steps:
      - id: tell
        channel: email
        content:
          email: {{subject: "Hi {{{{ name }}}}", text: "Hello {{{{ name }}}}"}}
"""


def test_the_events_of_planned_rows_say_what_the_python_rule_says(pipeline: Pipeline) -> None:
    # On PostgreSQL the events of a chunk are made by SQL from the ledger rows; they must be the events
    # `planned_event` makes (planned with not_before, suppressed with and without detail).
    p = pipeline
    lines = ["id,name,email,timezone,consent_email"]
    lines += [f"q{i:03d},N{i},q{i}@example.com,UTC,yes" for i in range(120)]
    lines += ["r1,R,,UTC,yes", "r2,S,s@example.com,UTC,no"]
    p.import_csv("\n".join(lines) + "\n")
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    plan = p.run(p.campaign(QUIET.format(start=start, end=end)), deliver=False)
    assert plan.steps[0].deferred == 120 and dict(plan.steps[0].suppressed) == {"no_address": 1, "opted_out": 1}
    with p.engine.connect() as conn:
        found = {
            e["delivery_id"]: e
            for e in conn.execute(sa.select(events).where(events.c.delivery_id.is_not(None))).mappings()
        }
    rows = p.rows()
    assert len(found) == len(rows) == 122
    for row in rows:
        expected = planned_event(row, row["id"])
        event = found[row["id"]]
        assert (event["kind"], event["data"], event["customer_id"], event["campaign_id"]) == (
            expected["kind"],
            expected["data"],
            expected["customer_id"],
            expected["campaign_id"],
        )
        assert event["at"] == expected["at"]
    assert any("not_before" in e["data"] for e in found.values())
