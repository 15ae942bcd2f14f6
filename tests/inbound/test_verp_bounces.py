"""A return path of its own for every message (VERP, `email_return_path = "bounces+{id}@bank.example"`): the
SMTP server is given it as MAIL FROM, and a bounce sent back to it is matched to its message by that
address alone, even when the report quotes nothing of the message. Over IMAP, as from Dovecot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from outreach.customers.profiles import get_customer
from outreach.store.ledger import Status
from tests.imap_server import ImapServer
from tests.pipeline import Pipeline
from tests.postfix_dsns import failed, postfix_dsn
from tests.smtp_server import SmtpServer

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,email,consent_email
    v1,Ann,ann@example.com,yes
    v2,Bob,bob@example.com,yes
"""

LETTER = """
    id: letter
    name: Monthly letter
    purpose: marketing
    steps:
      - id: send
        channel: email
        content:
          email: {subject: "News for {{ name }}", text: "Dear {{ name }}, here is our news."}
"""


@pytest.fixture
def pipeline_overrides() -> dict[str, Any]:
    return {"email_return_path": "bounces+{id}@bank.example"}


def test_a_bounce_to_a_messages_own_return_path_finds_it_without_quoting_it(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(LETTER))
    [bob_mail] = smtp_server.handler.to("bob@example.com")
    bob = p.row("v2")
    return_path = bob_mail.mail_from
    assert return_path.startswith(f"bounces+{bob['id']}.") and return_path.endswith("@bank.example")
    assert return_path != smtp_server.handler.to("ann@example.com")[0].mail_from

    # the report names nothing of the message but the address it was sent to
    bounce = postfix_dsn(bob_mail.data, [failed("bob@example.com")], to=return_path, quoted=False)
    assert bob["provider_message_id"].encode() not in bounce
    forged = postfix_dsn(
        bob_mail.data, [failed("ann@example.com")], to=f"bounces+{p.row('v1')['id']}.0000000000@bank.example",
        quoted=False, queue_id="9F9F9F9F9F",
    )  # fmt: skip
    with ImapServer("bounces@bank.example", "imap-pass-123", move=False) as imap:
        imap.folders["INBOX"].add(bounce)
        imap.folders["INBOX"].add(forged)
        env = {
            **os.environ,
            "OUTREACH_DATABASE_URL": p.settings.database_url,
            "OUTREACH_CONFIG": "/nonexistent",
            "OUTREACH_EMAIL_RETURN_PATH": "bounces+{id}@bank.example",
            "OUTREACH_IMAP_PASSWORD": "imap-pass-123",
        }
        url = f"imap://bounces%40bank.example@127.0.0.1:{imap.port}/INBOX"
        done = subprocess.run(
            [OUTREACH, "inbound", "mailbox", url], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr
    assert "hard bounce 1" in done.stdout and "unmatched 1" in done.stdout  # the forged check matches no row
    bob = p.row("v2")
    assert (bob["status"], bob["error_code"]) == (Status.FAILED, "5.1.1")
    assert p.row("v1")["status"] == Status.SENT
    with p.engine.connect() as conn:
        customer = get_customer(conn, "v2")
    assert customer is not None and customer["email_invalid"] == "hard bounce 5.1.1"


def test_a_bad_return_path_is_refused_before_anything_is_read(pipeline: Pipeline, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": pipeline.settings.database_url,
        "OUTREACH_CONFIG": "/nonexistent",
        "OUTREACH_EMAIL_RETURN_PATH": "bounces@{id}.bank.example",
    }
    (tmp_path / "box" / "new").mkdir(parents=True)
    done = subprocess.run(
        [OUTREACH, "inbound", "mailbox", str(tmp_path / "box")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "email_return_path: 'bounces@{id}.bank.example' may hold {id} once, in the part before the @" in done.stderr
