"""`outreach inbound mailbox`: bounces and replies to real emails (as the SMTP server received them), in a
Maildir and over IMAP, filed onto the ledger and the profile once."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from outreach.customers.profiles import get_customer, timeline
from outreach.store.ledger import Status
from tests.imap_server import ImapServer
from tests.pipeline import Pipeline
from tests.postfix_dsns import delayed, expanded, failed, postfix_dsn, relayed
from tests.smtp_server import SmtpServer

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,email,locale,consent_email
    m1,王芳,wang@example.cn,zh-CN,yes
    m2,Bob,bob@example.com,en,yes
    m3,Amy,amy@example.com,en,yes
"""

LETTER = """
    id: letter
    name: Monthly letter
    purpose: marketing
    steps:
      - id: send
        channel: email
        content:
          email:
            subject: "News for {{ name }}"
            text: "Dear {{ name }}, here is our news."
"""


def dsn(original: bytes, address: str, status: str, action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) about `original`, as an MTA writes one."""
    headers = original.split(b"\r\n\r\n", 1)[0].replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    boundary = "b0undary-" + make_msgid()[1:9]
    report = (
        f"Reporting-MTA: dns; mx.bank.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\r\n"
    )
    head = (
        f"From: MAILER-DAEMON@mx.bank.example\r\nTo: bounces@bank.example\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: {make_msgid(domain='mx.bank.example')}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
    )
    parts = [
        "Content-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n",
        "Content-Type: message/delivery-status\r\n\r\n" + report,
        "Content-Type: text/rfc822-headers\r\n\r\n" + headers.decode("utf-8", "replace") + "\r\n",
    ]
    body = "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return (head + body).encode("utf-8")


def reply_to(original: EmailMessage, sender: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "no-reply@bank.example"
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["References"] = str(original["Message-ID"])
    msg.set_content(f"{text}\n\nOn Monday the bank wrote:\n> Dear customer, here is our news.\n")
    return msg.as_bytes()


def cli(p: Pipeline, *args: str, env: dict[str, str] | None = None, status: int = 0) -> Any:
    full = {**os.environ, "OUTREACH_DATABASE_URL": p.settings.database_url, "OUTREACH_CONFIG": "/nonexistent"}
    done = subprocess.run(
        [OUTREACH, *args], env={**full, **(env or {})}, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == status, done.stderr
    return json.loads(done.stdout) if "--json" in args and status == 0 else done


@pytest.fixture
def sent(pipeline: Pipeline, smtp_server: SmtpServer) -> dict[str, Any]:
    pipeline.import_csv(CUSTOMERS)
    pipeline.run(pipeline.campaign(LETTER))
    return {address: smtp_server.handler.to(address)[0] for address in ("wang@example.cn", "bob@example.com")}


def test_hard_bounce_and_reply_from_a_maildir_are_filed_once(
    pipeline: Pipeline, sent: dict[str, Any], tmp_path: Path
) -> None:
    p = pipeline
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    bounce = dsn(sent["bob@example.com"].data, "bob@example.com", "5.1.1")
    box.add(bounce)
    box.add(reply_to(sent["wang@example.cn"].message, "Wang Fang <wang@example.cn>", "谢谢,我想了解更多"))
    box.add(b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot for us\r\n")

    first = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert (first["hard_bounce"], first["reply"], first["skipped"]) == (1, 1, 1)
    bob = p.row("m2")
    assert (bob["status"], bob["error_code"]) == (Status.FAILED, "5.1.1")
    with p.engine.connect() as conn:
        customer = get_customer(conn, "m2")
        bob_events = [e["kind"] for e in timeline(conn, "m2")]
        wang_events = timeline(conn, "m1")
    assert customer is not None and customer["email_invalid"] == "hard bounce 5.1.1"
    assert bob_events.count("delivery.bounced") == 1 and "address.invalid" in bob_events
    [replied] = [e for e in wang_events if e["kind"] == "reply.received"]
    assert replied["data"]["text"] == "谢谢,我想了解更多"  # the quoted original is not part of it
    assert replied["delivery_id"] == p.row("m1")["id"]
    assert p.row("m1")["replied_at"] is not None

    # everything was moved aside: a second run files nothing, even with the same messages put back
    second = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert second["hard_bounce"] == second["reply"] == 0
    box.add(bounce)  # the same report delivered again
    again = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert (again["hard_bounce"], again["duplicate"]) == (0, 1)
    with p.engine.connect() as conn:
        assert [e["kind"] for e in timeline(conn, "m2")].count("delivery.bounced") == 1

    # the invalid address keeps the customer out of the next run
    p.run(p.campaign(LETTER), "june")
    june = p.row("m2", occurrence="june")
    assert (june["status"], june["reason"]) == (Status.SUPPRESSED, "invalid_address")


def test_delay_warnings_are_noted_and_only_failures_bounce(
    pipeline: Pipeline, sent: dict[str, Any], tmp_path: Path
) -> None:
    """RFC 3464 as a real MTA speaks it: three of Postfix's delay warnings about a working address are three
    notes on the timeline, not three soft bounces; a success report is information; only `failed` bounces."""
    p = pipeline
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    original = sent["bob@example.com"].data
    for queue_id in ("4XkQ01", "4XkQ02", "4XkQ03"):
        box.add(postfix_dsn(original, [delayed("bob@example.com")], report="delay", queue_id=queue_id))
    filed = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert (filed["delayed"], filed["soft_bounce"], filed["hard_bounce"]) == (3, 0, 0)
    with p.engine.connect() as conn:
        customer = get_customer(conn, "m2")
        notes = [e for e in timeline(conn, "m2") if e["kind"] == "delivery.delayed"]
    assert customer is not None and customer["email_invalid"] is None
    assert p.row("m2")["status"] == Status.SENT  # the server is still trying
    assert len(notes) == 3
    assert notes[0]["data"]["status"] == "4.4.1"
    assert notes[0]["data"]["will_retry_until"] == "Sun, 13 Oct 2024 17:30:01 +0800 (CST)"

    box.add(postfix_dsn(original, [delayed("bob@example.com")], report="delay", queue_id="4XkQ03"))  # again
    box.add(postfix_dsn(original, [relayed("bob@example.com")], report="success", queue_id="4XkQ04"))
    box.add(postfix_dsn(original, [expanded("bob@example.com")], report="success", queue_id="4XkQ05"))
    again = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert (again["duplicate"], again["informational"], again["delayed"]) == (1, 2, 0)
    with p.engine.connect() as conn:
        kinds = [e["kind"] for e in timeline(conn, "m2")]
    assert kinds.count("delivery.relayed") == kinds.count("delivery.expanded") == 1
    assert p.row("m2")["status"] == Status.SENT

    # Postfix gives up after its queue lifetime: `failed` with a temporary status is a soft bounce
    box.add(postfix_dsn(original, [failed("bob@example.com", "4.4.7", "Message expired")], queue_id="4XkQ06"))
    gave_up = cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    assert gave_up["soft_bounce"] == 1
    bob = p.row("m2")
    assert (bob["status"], bob["error_code"]) == (Status.FAILED, "4.4.7")
    with p.engine.connect() as conn:
        customer = get_customer(conn, "m2")
    assert customer is not None and customer["email_invalid"] is None  # one soft bounce of soft_bounce_limit 3
    for queue_id in ("4XkQ07", "4XkQ08"):
        box.add(postfix_dsn(original, [failed("bob@example.com", "4.2.2", "Mailbox full")], queue_id=queue_id))
    cli(p, "inbound", "mailbox", str(tmp_path / "bounces"), "--json")
    with p.engine.connect() as conn:
        customer = get_customer(conn, "m2")
    assert customer is not None and customer["email_invalid"] == "3 soft bounces (last 4.2.2)"


def test_imap_mailbox_with_password_from_the_environment(pipeline: Pipeline, sent: dict[str, Any]) -> None:
    p = pipeline
    with ImapServer("bounces@bank.example", "imap-pass-123", move=False) as imap:
        imap.folders["INBOX"].add(dsn(sent["bob@example.com"].data, "bob@example.com", "5.1.1"))
        url = f"imap://bounces%40bank.example@127.0.0.1:{imap.port}/INBOX"
        wrong = cli(p, "inbound", "mailbox", url, env={"OUTREACH_IMAP_PASSWORD": "nope"}, status=1)
        assert "nope" not in wrong.stderr and "error" in wrong.stderr
        filed = cli(p, "inbound", "mailbox", url, "--json", env={"OUTREACH_IMAP_PASSWORD": "imap-pass-123"})
        assert filed["hard_bounce"] == 1
        assert imap.folders["INBOX"].raws() == []
        assert len(imap.folders["outreach-processed"].raws()) == 1
    assert p.row("m2")["status"] == Status.FAILED


def test_a_path_that_is_not_a_maildir_is_bad_input(pipeline: Pipeline, tmp_path: Path) -> None:
    done = cli(pipeline, "inbound", "mailbox", str(tmp_path / "missing"), status=2)
    assert done.stderr.startswith(str(tmp_path / "missing") + ":")
