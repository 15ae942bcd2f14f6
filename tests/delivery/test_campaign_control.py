"""Pause, resume and cancel, through the real CLI, against the pipeline's store: nothing sent while paused,
everything once after resuming, nothing after cancelling, and every action in the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from outreach.planning.planner import plan_campaign
from outreach.store.ledger import Status
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,email,consent_email
    p1,Ann,ann@example.com,yes
    p2,Ben,ben@example.com,yes
    p3,Cao,cao@example.com,yes
"""

LETTER = """
    id: letter
    name: Letter
    purpose: marketing
    steps:
      - id: send
        channel: email
        content:
          email: {subject: "News for {{ name }}", text: "Hello {{ name }}"}
"""


def cli(p: Pipeline, *args: str, status: int = 0) -> Any:
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": p.settings.database_url,
        "OUTREACH_CONFIG": "/nonexistent",
        "OUTREACH_SMTP_URL": p.settings.smtp_url or "",
    }
    done = subprocess.run([OUTREACH, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == status, (done.stdout, done.stderr)
    return json.loads(done.stdout) if "--json" in args else done


def received(smtp: SmtpServer) -> int:
    return sum(len(smtp.handler.to(a)) for a in ("ann@example.com", "ben@example.com", "cao@example.com"))


def test_pause_holds_and_resume_sends_each_once(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    plan = plan_campaign(p.engine, p.load(p.campaign(LETTER)), p.settings, dry_run=False, transport=p.handle.transport)
    cli(p, "campaigns", "pause", "letter", "--by", "alice", "--reason", "wrong price in the text")
    p.handle.start_worker(2)
    p.deliver_queued()  # the workers get the batch: the claim leaves the paused campaign's rows alone
    assert received(smtp_server) == 0
    assert {r["status"] for r in p.rows()} == {Status.QUEUED}

    done = cli(p, "campaigns", "resume", "letter", "--by", "bob")  # in-process broker: delivers before it returns
    assert "3 queued messages" in done.stdout
    p.deliver_queued()
    assert received(smtp_server) == 3
    assert {r["status"] for r in p.rows()} == {Status.SENT}
    # resuming again, or the old broker message coming back, sends nothing more
    cli(p, "campaigns", "resume", "letter")
    p.handle.transport.enqueue(plan.row_ids)
    p.deliver_queued()
    assert received(smtp_server) == 3

    log = cli(p, "audit", "list", "--json")
    assert [(e["action"], e["actor"], e["rows"]) for e in reversed(log)][:2] == [
        ("pause", "alice", 3),
        ("resume", "bob", 3),
    ]
    assert log[-1]["reason"] == "wrong price in the text"


def test_cancel_suppresses_what_has_not_gone_and_blocks_new_runs(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(LETTER)
    plan_campaign(p.engine, p.load(path), p.settings, dry_run=False, transport=p.handle.transport)
    cli(p, "campaigns", "cancel", "letter", "--reason", "compliance hold")
    p.handle.start_worker(2)
    p.deliver_queued()
    assert received(smtp_server) == 0
    for row in p.rows():
        assert (row["status"], row["reason"]) == (Status.SUPPRESSED, "cancelled")
    refused = cli(p, "campaigns", "run", str(path), "--occurrence", "again", status=2)
    assert "is cancelled" in refused.stderr
    assert cli(p, "audit", "list", "--action", "cancel", "--json")[0]["rows"] == 3


def test_consent_by_hand_is_audited(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    cli(p, "customers", "consent", "p2", "email", "marketing", "revoked", "--by", "branch-17", "--reason", "form")
    profile = cli(p, "customers", "show", "p2", "--json")
    [email] = [c for c in profile["consents"] if c["channel"] == "email"]
    assert (email["status"], email["source"]) == ("revoked", "operator:branch-17")
    [entry] = cli(p, "audit", "list", "--json")
    assert (entry["action"], entry["target"], entry["actor"], entry["reason"]) == ("consent", "p2", "branch-17", "form")
    bad = cli(p, "customers", "consent", "p2", "fax", "marketing", "maybe", status=2)
    assert "CHANNEL: 'fax'" in bad.stderr and "STATUS: 'maybe'" in bad.stderr
