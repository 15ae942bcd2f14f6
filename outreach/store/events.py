"""Profile events: the rows of a customer's timeline (a send, a report, a reply, a consent change, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy.engine import Connection

from outreach.store.database import utcnow
from outreach.store.schema import events


class EventRow(TypedDict):
    customer_id: str
    kind: str
    at: datetime
    delivery_id: int | None
    campaign_id: str | None
    data: dict[str, Any] | None


def event_row(
    customer_id: str,
    kind: str,
    data: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
    delivery_id: int | None = None,
    campaign_id: str | None = None,
) -> EventRow:
    return {
        "customer_id": customer_id,
        "kind": kind,
        "at": at or utcnow(),
        "delivery_id": delivery_id,
        "campaign_id": campaign_id,
        "data": dict(data) if data else None,
    }


def add_events(conn: Connection, rows: Sequence[EventRow] | Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(events.insert(), list(rows))
