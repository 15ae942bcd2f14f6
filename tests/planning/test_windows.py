"""The social channels' reply windows at plan time: WhatsApp within 24 hours of the customer's last message,
else the fallback channel, else suppressed `window_closed`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from outreach.inbound.responses import InboundMessage, file_inbound
from outreach.store.database import utcnow
from outreach.store.ledger import Status
from tests.pipeline import Pipeline

CUSTOMERS = """
    id,name,phone,whatsapp,country,consent_sms,consent_whatsapp
    x1,Ann,+14155550701,+14155550701,US,yes,yes
    x2,Ben,+14155550702,+14155550702,US,yes,yes
    x3,Cao,,+14155550703,US,,yes
"""

ANSWER = """
    id: answer
    name: Answer on WhatsApp
    purpose: service
    steps:
      - id: tell
        channel: whatsapp
        fallback: sms
        content:
          whatsapp: "{{ name }}, your card is ready for pick-up."
          sms: "{{ name }}, your card is ready for pick-up."
"""


def test_whatsapp_only_inside_the_window(pipeline: Pipeline, twilio_server: Any) -> None:
    from dataclasses import replace

    p = pipeline
    p.import_csv(CUSTOMERS)
    # Ann wrote an hour ago; Ben two days ago; Cao never
    file_inbound(
        p.engine,
        InboundMessage("whatsapp", "SMw1", "+14155550701", "hi", received_at=utcnow() - timedelta(hours=1)),
        p.settings,
    )
    file_inbound(
        p.engine,
        InboundMessage("whatsapp", "SMw2", "+14155550702", "hi", received_at=utcnow() - timedelta(days=2)),
        p.settings,
    )
    p.settings = replace(p.settings, whatsapp_from="+15005550007")
    plan = p.plan(p.campaign(ANSWER))
    assert dict(plan.steps[0].by_channel) == {"whatsapp": 1, "sms": 1}
    assert dict(plan.steps[0].suppressed) == {"window_closed": 1}
    p.run(p.campaign(ANSWER))
    assert p.row("x1")["channel"] == "whatsapp"
    assert p.row("x2")["channel"] == "sms"
    cao = p.row("x3")
    assert (cao["status"], cao["reason"]) == (Status.SUPPRESSED, "window_closed")
    assert "sms fallback: no_address" in cao["detail"]
