"""What the workers check just before sending: a WhatsApp row whose reply window closed while it waited is
suppressed `window_closed`; a message to the bank's own staff about a customer (purpose `internal`) goes
whatever the customer's consent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from outreach.customers.profiles import set_consent
from outreach.inbound.responses import InboundMessage, file_inbound
from outreach.store.database import insert_returning, utcnow
from outreach.store.ledger import INTERNAL, Status
from outreach.store.schema import deliveries
from tests.pipeline import Pipeline, later
from tests.smtp_server import SmtpServer

ANSWER = """
    id: answer
    name: Answer on WhatsApp
    purpose: service
    steps:
      - id: tell
        channel: whatsapp
        content:
          whatsapp: "{{ name }}, your card is ready for pick-up."
"""


@pytest.fixture
def pipeline_overrides() -> dict[str, Any]:
    """A WhatsApp sender, so that WhatsApp goes to the Twilio-like server."""
    return {"whatsapp_from": "+15005550007"}


def test_a_row_whose_window_closed_while_it_waited_is_not_sent(
    pipeline: Pipeline, twilio_server: Any, clock: None
) -> None:
    p = pipeline
    p.import_csv(
        """
        id,name,whatsapp,country,consent_whatsapp
        w1,Ann,+14155550901,US,yes
        w2,Ben,+14155550902,US,yes
        """
    )
    # Ann wrote 23 hours ago, Ben an hour ago: both windows are open when the campaign is planned
    for sid, number, ago in (("SMs1", "+14155550901", 23), ("SMs2", "+14155550902", 1)):
        file_inbound(
            p.engine,
            InboundMessage("whatsapp", sid, number, "hi", received_at=utcnow() - timedelta(hours=ago)),
            p.settings,
        )
    p.run(p.campaign(ANSWER), deliver=False)
    assert {r["customer_id"]: (r["channel"], r["status"]) for r in p.rows()} == {
        "w1": ("whatsapp", Status.QUEUED),
        "w2": ("whatsapp", Status.QUEUED),
    }

    later(timedelta(hours=2))  # the workers come to it two hours later: Ann's 24 hours are over
    p.handle.start_worker(2)
    p.deliver_queued()

    ann = p.row("w1")
    assert (ann["status"], ann["reason"], ann["detail"]) == (
        Status.SUPPRESSED,
        "window_closed",
        "reply window closed before sending",
    )
    assert twilio_server.sent_to("whatsapp:+14155550901") == []
    assert p.row("w2")["status"] == Status.SENT
    [sent] = twilio_server.sent_to("whatsapp:+14155550902")
    assert sent["body"] == "Ben, your card is ready for pick-up."


def test_an_internal_message_about_a_customer_who_opted_out_still_goes(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv("id,name,email,country,consent_email\ne1,Ann,ann@example.com,US,yes\n")
    now = utcnow()
    with p.engine.begin() as conn:
        for purpose in ("marketing", "service"):
            set_consent(conn, "e1", "email", purpose, "revoked", "test:unsubscribed", at=now)

    def row(purpose: str, address: str, subject: str) -> dict[str, Any]:
        return {
            "idempotency_key": f"test:{purpose}:e1:email",
            "campaign_id": "escalation",
            "occurrence": "manual",
            "step_id": purpose,
            "customer_id": "e1",
            "channel": "email",
            "purpose": purpose,
            "status": Status.QUEUED,
            "address": address,
            "subject": subject,
            "body": "Ann (e1) has asked twice about her blocked card: please call her.",
            "attempts": 0,
            "enqueued_at": now,
            "created_at": now,
            "updated_at": now,
        }

    with p.engine.begin() as conn:
        ids = [
            delivery_id
            for (delivery_id,) in insert_returning(
                conn,
                deliveries,
                [
                    row(INTERNAL, "service-desk@bank.example", "Escalation: customer e1"),
                    row("service", "ann@example.com", "About your card"),
                ],
                ("id",),
            )
        ]
    p.handle.start_worker(2)
    p.handle.transport.enqueue(ids)
    p.deliver_queued()

    internal = p.row("e1", purpose=INTERNAL)
    assert (internal["status"], internal["reason"]) == (Status.SENT, None)
    [mail] = smtp_server.handler.to("service-desk@bank.example")
    assert mail.message["Subject"] == "Escalation: customer e1"
    # the same customer's own service email does not go: she opted out
    own = p.row("e1", purpose="service")
    assert (own["status"], own["reason"]) == (Status.SUPPRESSED, "opted_out")
    assert smtp_server.handler.to("ann@example.com") == []
