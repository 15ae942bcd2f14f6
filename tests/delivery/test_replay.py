"""Replaying failed deliveries: exactly the selection, once, never what was sent, with consent checked again
and the recorded or re-rendered content."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from outreach.customers.profiles import set_consent
from outreach.delivery.replay import replay
from outreach.store.ledger import Status
from outreach.store.schema import audit_log, deliveries
from tests.commands import OUTREACH, environment, twilio_environment
from tests.pipeline import Pipeline

CUSTOMERS = """
    id,name,phone,country,email,consent_sms,consent_email
    r1,Ann,+14155550601,US,ann@example.com,yes,yes
    r2,Ben,+14155550602,US,ben@example.com,yes,yes
    r3,Cao,+14155550603,US,cao@example.com,yes,yes
"""

NOTICE = """
    id: notice
    name: Notice
    purpose: marketing
    steps:
      - id: tell
        channel: sms
        content:
          sms: "{{ name }}, version one."
"""


def test_replay_sends_the_dead_rows_once_and_suppresses_who_opted_out(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    twilio_server.fail_next(1000, 20500)
    p.run(p.campaign(NOTICE))
    twilio_server.fail_next(0)
    rows = p.rows()
    assert {r["status"] for r in rows} == {Status.DEAD}
    assert twilio_server.accepted() == []
    with p.engine.begin() as conn:  # Cao said STOP in the meantime
        set_consent(conn, "r3", "sms", "marketing", "revoked", "sms:keyword STOP")

    where = deliveries.c.campaign_id == "notice"
    dry = replay(p.engine, p.settings, where, transport=None, dry_run=True)
    assert (dry.selected, len(dry.requeued), dict(dry.suppressed)) == (3, 2, {"opted_out": 1})
    assert {r["status"] for r in p.rows()} == {Status.DEAD}  # a dry run changes nothing

    p.handle.start_worker(2)
    done = replay(
        p.engine, p.settings, where, transport=p.handle.transport, dry_run=False, actor="ops", reason="provider outage"
    )
    p.deliver_queued()
    assert len(done.requeued) == 2
    assert len(twilio_server.sent_to("+14155550601")) == 1 and len(twilio_server.sent_to("+14155550602")) == 1
    assert twilio_server.sent_to("+14155550603") == []
    assert (p.row("r3")["status"], p.row("r3")["reason"]) == (Status.SUPPRESSED, "opted_out")

    again = replay(p.engine, p.settings, where, transport=p.handle.transport, dry_run=False, actor="ops")
    p.deliver_queued()
    assert again.selected == 0
    assert len(twilio_server.accepted()) == 2
    with p.engine.connect() as conn:
        log = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings().all()
    assert [(e["action"], e["actor"], e["rows"]) for e in log] == [("replay", "ops", 3), ("replay", "ops", 0)]
    assert log[0]["reason"] == "provider outage"


def test_replay_never_touches_sent_rows_and_can_rerender(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    twilio_server.fail_next(1000, 20500)
    path = p.campaign(NOTICE)
    p.run(path)
    twilio_server.fail_next(0)
    assert {r["status"] for r in p.rows()} == {Status.DEAD}
    with p.engine.begin() as conn:  # Ann's went through after all (a late delivery report said so)
        conn.execute(deliveries.update().where(deliveries.c.customer_id == "r1").values(status=Status.DELIVERED))

    # the marketer fixes the text; the replay composes it again from the file as it is now
    path.write_text(path.read_text(encoding="utf-8").replace("version one", "version two"), encoding="utf-8")
    everything = deliveries.c.campaign_id == "notice"  # the selection includes a delivered row: left alone
    p.handle.start_worker(2)
    done = replay(p.engine, p.settings, everything, transport=p.handle.transport, dry_run=False, rerender=True)
    p.deliver_queued()
    assert (done.selected, len(done.requeued)) == (2, 2)
    assert twilio_server.sent_to("+14155550601") == []
    for phone, name in (("+14155550602", "Ben"), ("+14155550603", "Cao")):
        [message] = twilio_server.sent_to(phone)
        assert message["body"].startswith(f"{name}, version two.")
    assert p.row("r1")["status"] == Status.DELIVERED
    assert p.row("r2")["body"].startswith("Ben, version two.")  # the ledger shows what was sent


def test_replay_through_the_cli_dry_run_confirmation_reason_and_audit(pipeline: Pipeline, twilio_server: Any) -> None:
    import json
    import subprocess

    p = pipeline
    p.import_csv(CUSTOMERS)
    twilio_server.fail_next(1000, 20500)
    p.run(p.campaign(NOTICE))
    twilio_server.fail_next(0)
    env = environment(p.settings, **twilio_environment(p.settings), OUTREACH_REPLAY_REASON_THRESHOLD="2")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OUTREACH, "failures", "replay", "--campaign", "notice", *args],
            env=env, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    dry = run("--status", "dead", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["requeued"] == 3 and json.loads(dry.stdout)["dry_run"] is True
    no_reason = run("--yes")
    assert no_reason.returncode == 2 and no_reason.stderr.startswith("--reason: required to replay more than 2")
    unconfirmed = run("--reason", "outage")  # no terminal to ask on
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert twilio_server.accepted() == []
    done = run("--reason", "outage", "--yes", "--by", "night-shift", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["requeued"] == 3
    assert len(twilio_server.accepted()) == 3  # the in-process broker delivered before the command returned
    again = run("--reason", "outage", "--yes", "--json")
    assert json.loads(again.stdout)["requeued"] == 0 and len(twilio_server.accepted()) == 3
    bad = run("--status", "sent")
    assert bad.returncode == 2 and bad.stderr.startswith("--status:")
