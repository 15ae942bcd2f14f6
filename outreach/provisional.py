"""Provisional profiles: someone writes to the bank on SMS, WhatsApp or WeChat from an address no customer has.

They get a profile of their own, so their messages, their opt-outs and the conversation are kept and
answered like anyone's. Its id is derived from the address (`provisional-wechat-1a2b3c4d5e6f`), so two
messages arriving at once make one profile. A provisional profile is never in a campaign's audience: it
gets replies only (inbound triggers, operators), until the bank imports the customer with that address and
the import adopts it (see `adopt_provisional`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.db import (
    customers,
    insert_ignoring_duplicates,
)
from outreach.fields import ADDRESS_FIELDS
from outreach.profiles import add_events, event_row

CHANNELS = frozenset({"sms", "whatsapp", "wechat"})
PREFIX = "provisional-"


def provisional_id(channel: str, address: str) -> str:
    return f"{PREFIX}{channel}-{hashlib.sha256(address.encode()).hexdigest()[:12]}"


def provisional_customer(conn: Connection, channel: str, address: str, now: datetime) -> str:
    """The provisional profile of `address` on `channel`, made if it does not exist yet; returns its id."""
    customer_id = provisional_id(channel, address)
    column = ADDRESS_FIELDS[channel][0]
    made = conn.execute(
        insert_ignoring_duplicates(conn, customers).values(
            id=customer_id, attributes={}, provisional_since=now, created_at=now, updated_at=now, **{column: address}
        )
    )
    if made.rowcount:
        add_events(
            conn, [event_row(customer_id, "profile.provisional", {"channel": channel, "address": address}, at=now)]
        )
    return customer_id


def is_provisional() -> sa.ColumnElement[bool]:
    return customers.c.provisional_since.is_not(None)
