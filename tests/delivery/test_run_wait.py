"""`campaigns run` waits honestly: its progress line says what it waits for (retries and when the next one is
due), and it exits 1 when messages of the run ended dead, failed or unknown."""

from __future__ import annotations

import os
import pty
import re
import subprocess

from tests.services import free_port
from tests.workdir import OUTREACH, Workdir

CUSTOMERS = """
    id,name,email,consent_email
    D1,王芳,wang@example.cn,yes
    D2,Bob,bob@example.com,yes
"""

NOTICE = """
    id: notice
    name: Notice
    purpose: service
    steps:
      - id: tell
        channel: email
        content:
          email: {subject: "For {{ name }}", text: "Hello {{ name }}"}
"""


def test_run_exits_1_when_messages_end_dead_and_shows_its_retries(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("notice.yaml", NOTICE)
    unreachable = {
        "OUTREACH_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",  # nothing listens there
        "OUTREACH_MAX_ATTEMPTS": "3",
        "OUTREACH_RETRY_BACKOFF": "1.5",
        "OUTREACH_RETRY_BACKOFF_MAX": "1.5",
        "COLUMNS": "200",
    }
    # In a terminal, as an operator runs it, so that the progress line is drawn.
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [OUTREACH, "campaigns", "run", "notice.yaml", "--wait"],
        cwd=desk.path,
        env={**desk.env, **unreachable, "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the command exited and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 1
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert re.search(r"delivering \(in-process\): 0/2 done, retrying 2, next in \ds", screen), screen
    assert "not sent: dead 2 (see `outreach failures list --campaign notice --occurrence manual`)" in screen
    failures = desk.json("failures", "list", "--campaign", "notice")
    assert {r["status"] for r in failures["rows"]} == {"dead"}


def test_run_exits_0_when_everything_went(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("notice.yaml", NOTICE)
    done = desk.ok("campaigns", "run", "notice.yaml", "--wait")
    assert "ledger: targeted 2, sent 2" in done.stdout
    assert "not sent" not in done.stdout + done.stderr
