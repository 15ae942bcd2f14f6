"""Every step can be previewed before it goes, follow-ups included: `campaigns plan` says who a follow-up
would go to now and who it would skip (replied, only_if) or is not due for yet, per step and in the
recipient list; `plan --customer` judges it against the customer's real history. Nothing is written."""

from __future__ import annotations

import csv
import mailbox
import sqlite3
from email.message import EmailMessage

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,email,locale,consent_email,nps_score
    B001,Ann,ann@example.com,en,yes,
    B002,Ben,ben@example.com,en,yes,
    B003,Cao,cao@example.com,en,yes,
    B004,Dee,dee@example.com,en,yes,8
"""

SURVEY = """
    id: nps-q4
    name: Q4 survey
    purpose: service
    steps:
      - id: ask
        channel: email
        expects: {survey: nps}
        content:
          email: {subject: "How did we do, {{ name }}?", text: "Reply with a score from 0 to 10."}
      - id: remind
        after: 3d
        unless: replied
        only_if: "nps_score is None"
        channel: email
        content:
          email: {subject: "A reminder, {{ name }}", text: "We would still love to hear from you."}
"""


def _days_pass(desk: Workdir, days: int, *customers: str) -> None:
    """As if the first step had been sent to `customers` `days` ago."""
    with sqlite3.connect(desk.path / "outreach.db") as db:
        marks = ",".join("?" * len(customers))
        db.execute(
            f"UPDATE deliveries SET sent_at = datetime(sent_at, '-{days} days') WHERE customer_id IN ({marks})",
            customers,
        )


def _reply(desk: Workdir, to: EmailMessage, sender: str, text: str) -> None:
    """The customer answers our email; their mail lands in the bounce-and-reply mailbox."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(to["From"])
    reply["Subject"] = "Re: " + str(to["Subject"])
    reply["Message-ID"] = "<reply-1@example.com>"
    reply["In-Reply-To"] = str(to["Message-ID"])
    reply.set_content(f"{text}\n")
    mailbox.Maildir(desk.path / "mail", create=True).add(reply.as_bytes())
    desk.ok("inbound", "mailbox", "mail")


def _ran(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("survey.yaml", SURVEY)
    desk.ok("campaigns", "run", "survey.yaml")
    _days_pass(desk, 4, "B001", "B002", "B004")  # B003 was sent it just now
    [ann] = [m["message"] for m in desk.outbox("email") if m["message"]["To"] == "ann@example.com"]
    _reply(desk, ann, "Ann <ann@example.com>", "9")


def test_plan_shows_who_a_follow_up_would_go_to_now_and_who_it_skips(desk: Workdir) -> None:
    _ran(desk)
    plan = desk.json("campaigns", "plan", "survey.yaml")
    ask, remind = plan["steps"]
    assert (ask["step"], ask["followup"]) == ("ask", None)
    assert remind["followup"] == {
        "previous_step": "ask",
        "after": "3d",
        "sent_previous": 4,
        "due": 1,
        "already_planned": 0,
        "skipped": {"replied": 1, "only_if": 1},  # Ann answered; Dee's nps_score was known
        "not_yet_due": 1,  # Cao was asked just now
        "next_due_at": remind["followup"]["next_due_at"],
        "other_occurrences": [],
    }
    assert (remind["to_send"], remind["by_channel"]) == (1, {"email": 1})
    assert [s["customer"] for s in remind["samples"]] == ["B002"]

    shown = desk.ok("campaigns", "plan", "survey.yaml", "--step", "remind", COLUMNS="200").stdout
    assert "audience (segment)" not in shown  # only the step asked for, not the first one
    assert "skipped: replied" in shown and "skipped: only_if is false" in shown and "not due yet (the first at" in shown
    assert "Subject: A reminder, Ben" in shown

    desk.ok("campaigns", "plan", "survey.yaml", "--recipients", "who.csv")
    lines = {(r["step"], r["customer"]): r for r in csv.DictReader((desk.path / "who.csv").open(encoding="utf-8"))}
    assert (lines[("remind", "B001")]["status"], lines[("remind", "B001")]["reason"]) == ("skipped", "replied")
    assert lines[("remind", "B001")]["detail"].startswith("replied at ")
    assert (lines[("remind", "B004")]["status"], lines[("remind", "B004")]["reason"]) == ("skipped", "only_if")
    assert lines[("remind", "B003")]["status"] == "not yet due" and lines[("remind", "B003")]["not_before"]
    assert (lines[("remind", "B002")]["status"], lines[("remind", "B002")]["to"]) == ("would send", "ben@example.com")

    # a preview writes nothing: the ledger holds the four questions only
    assert desk.json("report", "nps-q4")["funnel"]["targeted"] == 4
    missing = desk.run("campaigns", "plan", "survey.yaml", "--step", "nudge")
    assert missing.returncode == 2
    assert "--step: campaign nps-q4 has no step 'nudge' (its steps: ask, remind)" in missing.stderr


def test_one_customers_preview_judges_a_follow_up_by_their_history(desk: Workdir) -> None:
    _ran(desk)
    ann = desk.ok("campaigns", "plan", "survey.yaml", "--customer", "B001", COLUMNS="200").stdout
    assert "would be skipped: replied at " in ann
    assert "by email to ann@example.com" not in ann.split("step remind")[1]  # the reminder is not shown as going
    dee = desk.json("campaigns", "plan", "survey.yaml", "--customer", "B004", "--step", "remind")
    [remind] = dee["steps"]
    assert (remind["status"], remind["reason"], remind["detail"]) == (
        "skipped",
        "only_if",
        "only_if nps_score is None is false",
    )
    ben = desk.json("campaigns", "plan", "survey.yaml", "--customer", "B002", "--step", "remind")["steps"][0]
    assert (ben["status"], ben["to"], ben["followup"]["state"]) == ("queued", "ben@example.com", "due")
    cao = desk.ok("campaigns", "plan", "survey.yaml", "--customer", "B003", "--step", "remind").stdout
    assert "not due yet: due at " in cao and "Subject: A reminder, Cao" in cao


def test_before_the_first_run_a_follow_up_shows_what_it_would_send(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("survey.yaml", SURVEY)
    remind = desk.json("campaigns", "plan", "survey.yaml")["steps"][1]
    assert (remind["followup"]["sent_previous"], remind["to_send"]) == (0, 0)
    shown = desk.ok("campaigns", "plan", "survey.yaml").stdout
    assert "nobody has been sent step ask for occurrence manual yet" in shown
    ben = desk.ok("campaigns", "plan", "survey.yaml", "--customer", "B002").stdout
    assert "not yet: step ask has not been sent to them" in ben and "Subject: A reminder, Ben" in ben
