"""Escalation: a conversation tagged with one of `escalate_tags` (a complaint) that no operator has answered
within `escalate_after` is emailed, with the whole conversation, to the service desk (`service_email`).

The email is a ledger row like any message (campaign `escalation`, purpose `internal`: it goes to the bank's
staff, so the customer's consents do not apply), with retries, failure listing and replay. A conversation is
escalated once per wait: when an operator has answered and the customer writes again, a new wait begins
and may be escalated again. The scheduler looks every tick; `outreach conversations escalate` looks now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.durations import parse_duration
from outreach.core.settings import Settings
from outreach.customers.conversations import span_text, transcript
from outreach.planning.queueing import Transport
from outreach.store.json_lists import list_contains
from outreach.store.ledger import INTERNAL, new_row, queue_one
from outreach.store.schema import conversations, customers

CAMPAIGN = "escalation"
c = conversations.c


def escalate_due(engine: Engine, settings: Settings, transport: Transport | None, now: datetime) -> list[int]:
    """Escalate every conversation that has waited too long; returns the ledger rows of the emails."""
    if not settings.service_email or not settings.escalate_tags:
        return []
    cutoff = now - parse_duration(settings.escalate_after)
    not_yet = sa.or_(c.escalated_at.is_(None), c.escalated_at < c.waiting_since)
    due = sa.and_(c.status == "open", c.waiting_since.is_not(None), c.waiting_since <= cutoff, not_yet)
    with engine.connect() as conn:
        tagged_as_escalated = sa.or_(*(list_contains(c.tags, tag, conn.dialect.name) for tag in settings.escalate_tags))
        tagged = list(conn.execute(sa.select(c.id).where(due, tagged_as_escalated).order_by(c.id)).scalars())
    planned: list[int] = []
    for conversation_id in tagged:
        with engine.begin() as conn:
            # conditional: a second scheduler, or the CLI at the same moment, escalates nothing twice
            taken = conn.execute(
                conversations.update().where(c.id == conversation_id, due).values(escalated_at=now, updated_at=now)
            )
            if taken.rowcount:
                planned.append(_write_email(conn, conversation_id, settings, now))
    if planned and transport is not None:
        transport.enqueue(planned)
    return planned


def _write_email(conn: Connection, conversation_id: int, settings: Settings, now: datetime) -> int:
    conversation = dict(conn.execute(sa.select(conversations).where(c.id == conversation_id)).mappings().one())
    customer = conn.execute(sa.select(customers.c.name).where(customers.c.id == conversation["customer_id"])).first()
    name = customer.name if customer is not None and customer.name else None
    tags = ", ".join(conversation["tags"] or [])
    waited = span_text(now - conversation["waiting_since"])
    who = f"{name} ({conversation['customer_id']})" if name else conversation["customer_id"]
    subject = f"[Escalation] {tags}: {who} has waited {waited} for an answer (conversation {conversation_id})"
    body = escalation_text(conn, conversation, who, waited)
    customer_id = conversation["customer_id"]
    wait_start = conversation["waiting_since"].strftime("%Y%m%dT%H%M%S")
    row = new_row(
        campaign_id=CAMPAIGN,
        occurrence=f"conversation-{conversation_id}-{wait_start}",
        step_id="escalate",
        customer_id=customer_id,
        channel="email",
        purpose=INTERNAL,
        address=settings.service_email,
        now=now,
        subject=subject,
        body=body,
        conversation_id=conversation_id,
    )
    data = {"conversation": conversation_id, "to": settings.service_email, "waited": waited, "tags": tags}
    return queue_one(conn, row, "conversation.escalated", data, now)


def escalation_text(conn: Connection, conversation: dict[str, Any], who: str, waited: str) -> str:
    customer_id = conversation["customer_id"]
    lines = [
        f"Customer: {who}",
        f"Tags: {', '.join(conversation['tags'] or [])}",
        f"Waiting since: {conversation['waiting_since']:%Y-%m-%d %H:%M} UTC ({waited}); no operator has answered.",
        "",
        f"Their profile:   outreach customers show {customer_id}",
        f'Answer them:     outreach reply {customer_id} --channel {conversation["channel"]} "..."',
        f"Close it:        outreach conversations close {conversation['id']}",
        "",
        f"Conversation {conversation['id']}:",
    ]
    for message in transcript(conn, conversation["id"]):
        if message["direction"] == "in":
            head = f"customer on {message['channel']}"
        else:
            head = f"{message['by']} on {message['channel']}, {message['status']}"
        lines.append(f"{message['at']:%Y-%m-%d %H:%M} {head}:")
        lines.extend("    " + line for line in (message["text"] or "").splitlines() or [""])
    return "\n".join(lines) + "\n"
