"""The sweep on the ledger, with the in-process broker and a real SMTP server, on SQLite and PostgreSQL.

A "lost" message is one the broker dropped: the rows are planned and enqueued, then the in-process broker's
queue is flushed. A "dead worker" is a claim nobody records a result for. Rows are made older by moving their
timestamps back (the sweep itself runs at the real time, as workers claim at the real time).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from outreach.channels.base import SendResult
from outreach.delivery.batches import outgoing
from outreach.delivery.outcomes import record_outcomes
from outreach.delivery.send_recorder import mark_started
from outreach.delivery.sweep import SweepReport, sweep
from outreach.inbound.provider_reports import ReportOutcome, StatusReport, apply_status_reports
from outreach.journeys.scheduler import SchedulerCore
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status, claim
from outreach.store.schema import campaigns, deliveries, events
from tests.commands import OUTREACH, environment
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

CUSTOMERS = "id,name,email,consent_email\n" + "".join(f"c{i},Customer {i},c{i}@example.com,yes\n" for i in range(6))


def notice(on_unknown: str = "hold") -> str:
    return f"""
        id: notice
        name: Statement notice
        purpose: service
        on_unknown: {on_unknown}
        steps:
          - id: tell
            channel: email
            content:
              email:
                subject: "Statement for {{{{ name }}}}"
                text: "Dear {{{{ name }}}}, your statement is ready."
    """


LIMIT = timedelta(minutes=5)


def lost(p: Pipeline, on_unknown: str = "hold") -> list[int]:
    """Plan the campaign into the ledger and the broker, then let the broker lose every message."""
    p.import_csv(CUSTOMERS)
    plan = p.run(p.campaign(notice(on_unknown)), deliver=False)
    p.handle.broker.flush_all()
    assert len(plan.row_ids) == 6
    return list(plan.row_ids)


def handed_over(p: Pipeline, ids: list[int]) -> list[DeliveryRow]:
    """Claim the rows and note them handed to the provider, as a worker does right before each call."""
    claimed = claim(p.engine, ids)
    with p.engine.begin() as conn:
        assert mark_started(conn, claimed) == {r["id"] for r in claimed}
    return claimed


def later(minutes: float) -> Any:
    return utcnow() + timedelta(minutes=minutes)


def run_sweep(p: Pipeline) -> SweepReport:
    return sweep(p.engine, p.handle.transport, p.settings, LIMIT, utcnow())


def set_rows(p: Pipeline, ids: list[int], **values: Any) -> None:
    with p.engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(**values))


def age(p: Pipeline, ids: list[int], minutes: float, column: str = "enqueued_at") -> None:
    """As if the rows had been enqueued (or claimed) `minutes` ago."""
    set_rows(p, ids, **{column: later(-minutes)})


def statuses(p: Pipeline) -> list[str]:
    return [r["status"] for r in p.rows()]


def timeline(p: Pipeline, delivery_id: int) -> list[tuple[str, dict[str, Any]]]:
    with p.engine.connect() as conn:
        query = sa.select(events.c.kind, events.c.data).where(events.c.delivery_id == delivery_id)
        return [(kind, data or {}) for kind, data in conn.execute(query.order_by(events.c.id))]


def received(smtp_server: SmtpServer) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in smtp_server.handler.received)


EVERYONE = [f"c{i}@example.com" for i in range(6)]


def test_queued_rows_the_broker_lost_are_enqueued_again_and_sent_once(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    ids = lost(p)
    p.deliver_queued()
    assert received(smtp_server) == []  # the broker lost them: nothing moves without the sweep
    age(p, ids, 4)
    assert run_sweep(p) == SweepReport()  # not yet past the limit
    age(p, ids, 6)
    assert run_sweep(p) == SweepReport(requeued=6)  # the running workers take them at once
    p.deliver_queued()
    assert received(smtp_server) == EVERYONE
    assert set(statuses(p)) == {Status.SENT}
    age(p, ids, 60)
    assert run_sweep(p) == SweepReport()  # nothing left to do
    p.deliver_queued()
    assert received(smtp_server) == EVERYONE


def test_rows_that_are_waiting_for_good_reason_are_left_alone(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    ids = lost(p)
    age(p, ids, 10)
    set_rows(p, ids[1:2], not_before=later(60))  # quiet hours until later
    set_rows(p, ids[2:3], next_attempt_at=later(-1))  # a retry (recorded 10 minutes ago) that came due a minute ago
    age(p, ids[3:4], 1)  # enqueued a minute ago
    with p.engine.begin() as conn:  # a paused campaign's rows wait for `resume`
        conn.execute(campaigns.update().values(state="paused"))
    assert run_sweep(p) == SweepReport()
    with p.engine.begin() as conn:
        conn.execute(campaigns.update().values(state="active"))
    assert run_sweep(p) == SweepReport(requeued=3)
    p.deliver_queued()
    assert received(smtp_server) == ["c0@example.com", "c4@example.com", "c5@example.com"]


def test_deferred_rows_whose_time_has_come_are_released(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    ids = lost(p)
    # Deferred when planned three minutes ago, due a minute ago; the broker lost the delayed message.
    set_rows(p, ids[:2], enqueued_at=later(-3), not_before=later(-1))
    assert run_sweep(p) == SweepReport(released=2)  # due rows go at once; the others are not stale yet
    p.deliver_queued()
    assert received(smtp_server) == ["c0@example.com", "c1@example.com"]


def test_sending_rows_of_dead_workers_become_unknown_and_are_held(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    ids = lost(p)
    claimed = handed_over(p, ids)  # a worker took them, began sending, then died without a word
    assert len(claimed) == 6
    age(p, ids, 60)
    assert run_sweep(p) == SweepReport()  # just claimed: a live worker may still be sending
    age(p, ids, 10, "claimed_at")
    assert run_sweep(p) == SweepReport(unknown=6, held=6)
    assert set(statuses(p)) == {Status.UNKNOWN}
    kind, data = timeline(p, ids[0])[-1]
    assert kind == "delivery.unknown"
    assert data["claimed_at"] == p.rows()[0]["claimed_at"].isoformat(timespec="seconds")
    assert (data["on_unknown"], data["attempt"]) == ("hold", 1)
    assert run_sweep(p) == SweepReport()  # unknown is not counted twice
    p.handle.transport.enqueue(ids)  # even a stray message for them sends nothing
    p.deliver_queued()
    assert received(smtp_server) == []


def test_claimed_rows_never_handed_over_are_queued_again_and_sent_once(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    ids = lost(p)
    claimed = claim(p.engine, ids)  # a worker took them and died before handing any to its provider ...
    with p.engine.begin() as conn:
        mark_started(conn, claimed[:2])  # ... but the first two
    age(p, ids, 60)
    assert run_sweep(p) == SweepReport()  # just claimed: a live worker may still be on its way to them
    age(p, ids, 10, "claimed_at")
    assert run_sweep(p) == SweepReport(unstarted=4, unknown=2, held=2)
    rows = p.rows()
    assert [r["status"] for r in rows] == [Status.UNKNOWN] * 2 + [Status.QUEUED] * 4
    assert [r["attempts"] for r in rows[2:]] == [0] * 4  # the claim's attempt was never made
    kind, data = timeline(p, ids[2])[-1]
    assert (kind, data["why"]) == ("delivery.requeued", "never handed over (the worker stopped first)")
    assert run_sweep(p) == SweepReport()
    p.deliver_queued()
    assert received(smtp_server) == EVERYONE[2:]
    assert statuses(p) == [Status.UNKNOWN] * 2 + [Status.SENT] * 4


def test_a_worker_does_not_send_a_row_the_sweep_took_back(pipeline: Pipeline) -> None:
    p = pipeline
    ids = lost(p)
    claimed = claim(p.engine, ids)
    age(p, ids, 10, "claimed_at")
    assert run_sweep(p) == SweepReport(unstarted=6)
    with p.engine.begin() as conn:  # the slow worker comes to its rows after all: none may go
        assert mark_started(conn, claimed) == set()


def test_on_unknown_resend_sends_them_again_within_the_attempt_budget(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    ids = lost(p, on_unknown="resend")
    handed_over(p, ids)
    age(p, ids, 10, "claimed_at")
    set_rows(p, ids[:1], attempts=p.settings.max_attempts)  # this one has been tried often enough
    assert run_sweep(p) == SweepReport(unknown=6, resent=5, held=1)
    p.deliver_queued()
    assert received(smtp_server) == EVERYONE[1:]
    assert statuses(p) == [Status.UNKNOWN] + [Status.SENT] * 5
    assert [k for k, _ in timeline(p, ids[1])][-4:] == [
        "delivery.unknown",
        "delivery.requeued",
        "delivery.sending",
        "delivery.sent",
    ]
    assert "max_attempts" in timeline(p, ids[0])[-1][1]["why"]


def test_a_cancelled_campaign_is_not_resent(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    ids = lost(p, on_unknown="resend")
    handed_over(p, ids)
    age(p, ids, 10, "claimed_at")
    with p.engine.begin() as conn:
        conn.execute(campaigns.update().values(state="cancelled"))
    assert run_sweep(p) == SweepReport(unknown=6, held=6)
    p.deliver_queued()
    assert received(smtp_server) == []


def test_a_late_result_or_the_providers_report_settles_an_unknown_row(pipeline: Pipeline) -> None:
    p = pipeline
    ids = lost(p)
    claimed = handed_over(p, ids)
    age(p, ids, 10, "claimed_at")
    assert run_sweep(p) == SweepReport(unknown=6, held=6)
    # The worker was slow, not dead: its result still counts.
    message = outgoing(claimed[0], p.settings)
    record_outcomes(p.engine, claimed[:1], [SendResult.sent(message, "<late@example>")], {}, p.settings)
    # The provider's delivery report settles another.
    report = StatusReport("SMlate", "delivered", delivery_id=ids[1])
    assert apply_status_reports(p.engine, [report]) == [ReportOutcome.APPLIED]
    rows = p.rows()
    assert [r["status"] for r in rows[:3]] == [Status.SENT, Status.DELIVERED, Status.UNKNOWN]
    assert rows[1]["provider_message_id"] == "SMlate"


def test_a_report_that_beats_the_sweep_keeps_the_row(pipeline: Pipeline) -> None:
    p = pipeline
    ids = lost(p)
    handed_over(p, ids)
    age(p, ids, 10, "claimed_at")
    apply_status_reports(p.engine, [StatusReport("SMfast", "sent", delivery_id=ids[0])])
    assert run_sweep(p) == SweepReport(unknown=5, held=5)
    assert statuses(p) == [Status.SENT] + [Status.UNKNOWN] * 5


def test_the_scheduler_sweeps_once_a_minute_with_the_configured_limit(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    ids = lost(p)
    age(p, ids, 10)
    core = SchedulerCore(p.engine, replace(p.settings, sweep_after="5m"), p.handle.transport)
    assert core.tick().swept == SweepReport(requeued=6)
    age(p, ids, 10)
    assert core.tick().swept is None  # not again within the minute
    assert core.tick(later(1.1)).swept == SweepReport(requeued=6)
    age(p, ids, 10)
    core = SchedulerCore(p.engine, replace(p.settings, sweep_after="15m"), p.handle.transport)
    assert core.tick().swept == SweepReport()  # ten minutes is within this limit
    p.deliver_queued()
    assert received(smtp_server) == EVERYONE


def test_outreach_sweep_command(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    ids = lost(p)
    handed_over(p, ids[:2])
    age(p, ids, 60)
    age(p, ids[:2], 60, "claimed_at")
    env = environment(p.settings)

    def outreach(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OUTREACH, "sweep", *args], env={**env, **extra}, capture_output=True, text=True, timeout=120
        )

    bad = outreach("--older-than", "soon")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("--older-than: 'soon' is not a duration")
    assert outreach(OUTREACH_SWEEP_AFTER="0s").stderr.startswith("sweep_after: ")

    done = outreach("--older-than", "30m", "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts == {
        "older_than": "30m",
        "requeued": 4,
        "unstarted": 0,
        "unknown": 2,
        "resent": 0,
        "held": 2,
        "released": 0,
        "spilled": 0,
    }
    # The in-process broker delivers before the command returns.
    assert received(smtp_server) == EVERYONE[2:]
    again = outreach()  # the configured limit (15m by default)
    assert again.returncode == 0, again.stderr
    assert "0 queued rows enqueued again" in again.stdout and "0 sending rows now unknown" in again.stdout
