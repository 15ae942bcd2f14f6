"""Conversations: what a customer wrote to the bank and what the bank answered, as one thread on their profile.

A customer's message (a reply, not a keyword or a survey answer) opens a conversation, or extends the one
open; it then waits for an operator. An auto-reply is written into the conversation but does not answer it:
only an operator's reply does (`outreach reply`), or closing it (`outreach conversations close`). A message
after `conversation_idle` of quiet closes the old conversation and opens a new one. One customer has at most
one open conversation (a unique index), so two messages arriving at once extend the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.store.database import insert_ignoring_duplicates
from outreach.store.events import add_events, event_row
from outreach.store.json_lists import list_contains
from outreach.store.schema import conversations, customers, deliveries, events, inbound_messages

c = conversations.c


@dataclass(frozen=True)
class Filter:
    open_only: bool = False
    tag: str | None = None
    customer_id: str | None = None
    limit: int = 200


def note_inbound(
    conn: Connection, customer_id: str, inbound_id: int, channel: str, now: datetime, idle: timedelta
) -> int:
    """File a customer's message into their open conversation (opening one if needed); returns its id."""
    current = _open_conversation(conn, customer_id)
    if current is not None and now - max(current.last_inbound_at, current.last_outbound_at or now) > idle:
        close(conn, current.id, "idle", now)
        current = None
    if current is None:
        conn.execute(
            insert_ignoring_duplicates(conn, conversations).values(
                customer_id=customer_id,
                status="open",
                channel=channel,
                tags=[],
                opened_at=now,
                last_inbound_at=now,
                messages=0,
                updated_at=now,
            )
        )
        current = _open_conversation(conn, customer_id)
        assert current is not None
        if current.messages == 0:
            add_events(
                conn,
                [
                    event_row(
                        customer_id, "conversation.opened", {"conversation": current.id, "channel": channel}, at=now
                    )
                ],
            )
    conn.execute(
        conversations.update()
        .where(c.id == current.id)
        .values(
            channel=channel,
            last_inbound_at=now,
            waiting_since=sa.func.coalesce(c.waiting_since, now),
            messages=c.messages + 1,
            updated_at=now,
        )
    )
    conn.execute(
        inbound_messages.update().where(inbound_messages.c.id == inbound_id).values(conversation_id=current.id)
    )
    return int(current.id)


def _open_conversation(conn: Connection, customer_id: str) -> Any:
    return conn.execute(sa.select(conversations).where(c.customer_id == customer_id, c.status == "open")).first()


def open_conversation_id(conn: Connection, customer_id: str) -> int | None:
    row = _open_conversation(conn, customer_id)
    return int(row.id) if row is not None else None


def note_reply(conn: Connection, conversation_id: int, delivery_id: int, now: datetime, *, by_operator: bool) -> None:
    """A message of ours in the conversation; an operator's answers what the customer was waiting for."""
    values: dict[str, Any] = {"last_outbound_at": now, "updated_at": now}
    if by_operator:
        values |= {"waiting_since": None, "answered_at": now}
    conn.execute(conversations.update().where(c.id == conversation_id).values(**values))
    conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(conversation_id=conversation_id))


def add_tag(conn: Connection, conversation_id: int, tag: str, now: datetime) -> None:
    tags = conn.execute(sa.select(c.tags).where(c.id == conversation_id).with_for_update()).scalar() or []
    if tag not in tags:
        conn.execute(conversations.update().where(c.id == conversation_id).values(tags=[*tags, tag], updated_at=now))


def close(conn: Connection, conversation_id: int, by: str, now: datetime) -> bool:
    """Close an open conversation; False if it was not open."""
    row = conn.execute(sa.select(c.customer_id).where(c.id == conversation_id, c.status == "open")).first()
    if row is None:
        return False
    conn.execute(
        conversations.update()
        .where(c.id == conversation_id, c.status == "open")
        .values(status="closed", closed_at=now, closed_by=by, waiting_since=None, updated_at=now)
    )
    add_events(
        conn, [event_row(row.customer_id, "conversation.closed", {"conversation": conversation_id, "by": by}, at=now)]
    )
    return True


def list_conversations(conn: Connection, selection: Filter, now: datetime) -> list[dict[str, Any]]:
    """Conversations, those waiting longest first, then the most recent; `waiting_s` is how long the customer
    has waited for an operator (None when answered or closed)."""
    query = (
        sa.select(conversations, customers.c.name, customers.c.provisional_since)
        .select_from(conversations.outerjoin(customers, customers.c.id == c.customer_id))
        .order_by(c.waiting_since.is_(None), c.waiting_since, c.last_inbound_at.desc(), c.id.desc())
        .limit(selection.limit)
    )
    if selection.open_only:
        query = query.where(c.status == "open")
    if selection.customer_id is not None:
        query = query.where(c.customer_id == selection.customer_id)
    if selection.tag is not None:
        query = query.where(list_contains(c.tags, selection.tag, conn.dialect.name))
    rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["waiting_s"] = int((now - row["waiting_since"]).total_seconds()) if row["waiting_since"] else None
        row["provisional"] = row.pop("provisional_since") is not None
    return rows


def get_conversation(conn: Connection, conversation_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(conversations).where(c.id == conversation_id)).mappings().first()
    return dict(row) if row is not None else None


def transcript(conn: Connection, conversation_id: int) -> list[dict[str, Any]]:
    """The conversation's messages in order: the customer's (`in`) and ours (`out`, with their status)."""
    m, d = inbound_messages.c, deliveries.c
    messages = [
        {"at": r.received_at, "direction": "in", "channel": r.channel, "text": r.body, "by": r.from_address}
        for r in conn.execute(
            sa.select(m.received_at, m.channel, m.body, m.from_address).where(m.conversation_id == conversation_id)
        )
    ]
    messages += [
        {
            "at": r.created_at,
            "direction": "out",
            "channel": r.channel,
            "text": r.body,
            "by": r.campaign_id,
            "status": r.status,
            "delivery": r.id,
        }
        for r in conn.execute(
            sa.select(d.id, d.created_at, d.channel, d.body, d.campaign_id, d.status).where(
                d.conversation_id == conversation_id, d.purpose != "internal"
            )
        )
    ]
    # An operator's reply names the operator (kept on its `delivery.planned` event, as `outreach reply --by`).
    ours = [x["delivery"] for x in messages if x["direction"] == "out"]
    if ours:
        planned = conn.execute(
            sa.select(events.c.delivery_id, events.c.data).where(
                events.c.delivery_id.in_(ours), events.c.kind == "delivery.planned"
            )
        )
        authors = {r.delivery_id: (r.data or {}).get("by") for r in planned}
        for message in messages:
            if message["direction"] == "out" and authors.get(message["delivery"]):
                message["by"] = f"{message['by']} {authors[message['delivery']]}"
    return sorted(messages, key=lambda x: (x["at"], x["direction"] == "out"))


def span_text(delta: timedelta) -> str:
    """`2d 3h`, `1h 05m`, `12m`: how long someone has waited, for people to read."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
