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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.customers.conversations import close, open_conversation_id
from outreach.customers.profiles import change_attributes, set_consent, with_list_values
from outreach.store.database import insert_ignoring_duplicates
from outreach.store.events import add_events, event_row
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.schema import consents, conversations, customers, deliveries, events, inbound_messages

CHANNELS = frozenset({"sms", "whatsapp", "wechat"})
PREFIX = "provisional-"
TAGS = "tags"  # the list attribute inbound triggers tag customers in


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


def adopt_provisional(conn: Connection, now: datetime) -> list[tuple[str, str]]:
    """Provisional profiles whose address an imported customer now has become that customer's: their
    messages, conversations, ledger rows, timeline and tags move over, and the provisional profile goes.
    Consents: an opt-out the stranger made is kept (saying no wins over a grant in the file); a consent the
    customer's profile lacks is taken from the provisional one. Returns (provisional id, customer id) pairs."""
    p, r = customers.alias("p"), customers.alias("r")
    pairs: dict[str, str] = {}
    for channel in sorted(CHANNELS):
        column = ADDRESS_FIELDS[channel][0]
        same = p.c[column] == r.c[column]
        if channel == "whatsapp":  # a customer's phone number is their WhatsApp number unless they gave one
            same = sa.or_(same, sa.and_(r.c.whatsapp.is_(None), r.c.phone == p.c.whatsapp))
        found = conn.execute(
            sa.select(p.c.id, sa.func.min(r.c.id))
            .where(p.c.provisional_since.is_not(None), r.c.provisional_since.is_(None), p.c[column].is_not(None), same)
            .group_by(p.c.id)
        )
        for provisional, customer in found:
            pairs.setdefault(provisional, customer)
    for provisional, customer in sorted(pairs.items()):
        _adopt(conn, provisional, customer, now)
    return sorted(pairs.items())


def _adopt(conn: Connection, provisional: str, customer: str, now: datetime) -> None:
    def consents_of(customer_id: str) -> dict[tuple[str, str], Any]:
        rows = conn.execute(sa.select(consents).where(consents.c.customer_id == customer_id))
        return {(row.channel, row.purpose): row for row in rows}

    ours = consents_of(customer)
    for key, row in consents_of(provisional).items():
        if key not in ours or (row.status == "revoked" and ours[key].status != "revoked"):
            set_consent(conn, customer, key[0], key[1], row.status, f"{row.source} (as {provisional})", at=now)
    conn.execute(consents.delete().where(consents.c.customer_id == provisional))
    theirs_open = open_conversation_id(conn, provisional)
    if theirs_open is not None and open_conversation_id(conn, customer) is not None:
        close(conn, theirs_open, "merged: the customer has an open conversation", now)
    for table in (inbound_messages, deliveries, events, conversations):
        conn.execute(table.update().where(table.c.customer_id == provisional).values(customer_id=customer))
    _merge_tags(conn, provisional, customer, now)
    conn.execute(customers.delete().where(customers.c.id == provisional))
    add_events(conn, [event_row(customer, "profile.adopted", {"provisional": provisional}, at=now)])


def _merge_tags(conn: Connection, provisional: str, customer: str, now: datetime) -> None:
    theirs = conn.execute(sa.select(customers.c.attributes).where(customers.c.id == provisional)).scalar() or {}
    if theirs.get(TAGS):
        change_attributes(conn, customer, lambda attributes: with_list_values(attributes, TAGS, theirs[TAGS]), now)
