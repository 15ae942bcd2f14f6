"""What is checked again just before a claimed row goes: consent withdrawn or the address found unusable
since planning, the reply window of WhatsApp or WeChat closed while the row waited, the frequency cap.
Replay uses the consent and address check too."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.customers.profiles import consent_block_reason, consent_map
from outreach.customers.reachability import address_block
from outreach.customers.reply_windows import REASON as WINDOW_CLOSED
from outreach.customers.reply_windows import REPLY_WINDOWS, open_windows
from outreach.planning.caps import send_time_caps
from outreach.store.database import utcnow
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.ledger import INTERNAL, DeliveryRow
from outreach.store.schema import customers


def send_time_blocks(engine: Engine, rows: Sequence[DeliveryRow]) -> dict[int, tuple[str, str]]:
    """Rows that must not go after all: consent withdrawn or the address found unusable since planning, the
    reply window of WhatsApp or WeChat closed while the row waited, or the customer's frequency cap reached.
    Returns delivery id -> (reason, detail), the first reason found for each row.
    """
    if not rows:
        return {}
    now = utcnow()
    with engine.connect() as conn:
        blocked = consent_and_address_blocks(conn, rows, "consent checked again at send time")
        blocked.update(closed_window_blocks(conn, [r for r in rows if r["id"] not in blocked], now))
    # Last, as it suppresses at once what it blocks: only rows that would otherwise go take a place.
    for delivery_id in send_time_caps(engine, [r for r in rows if r["id"] not in blocked], now):
        blocked[delivery_id] = ("frequency_cap", "frequency cap reached at send time")
    return blocked


def closed_window_blocks(conn: Connection, rows: Sequence[DeliveryRow], now: datetime) -> dict[int, tuple[str, str]]:
    """Rows on a channel with a reply window (quiet hours, retries or a paused campaign kept them past it) whose
    window is closed at `now`: delivery id -> (reason, detail). One query for the whole batch.
    """
    windowed = [r for r in rows if r["channel"] in REPLY_WINDOWS and r["purpose"] != INTERNAL]
    if not windowed:
        return {}
    still_open = open_windows(conn, {r["customer_id"] for r in windowed}, {r["channel"] for r in windowed}, now)
    return {
        r["id"]: (WINDOW_CLOSED, "reply window closed before sending")
        for r in windowed
        if (r["customer_id"], r["channel"]) not in still_open
    }


def consent_and_address_blocks(
    conn: Connection, rows: Sequence[DeliveryRow], detail: str
) -> dict[int, tuple[str, str]]:
    """Rows whose customer has withdrawn consent for the row's purpose and channel, or whose address (still
    the profile's) has been found unusable: delivery id -> (reason, detail). Used at send time and by replay.

    Rows with purpose `INTERNAL` go to the bank's own staff, not to the customer: they are never blocked here.
    """
    rows = [r for r in rows if r["purpose"] != INTERNAL]
    if not rows:
        return {}
    blocked: dict[int, tuple[str, str]] = {}
    by_purpose: dict[str, list[DeliveryRow]] = defaultdict(list)
    for row in rows:
        by_purpose[row["purpose"]].append(row)
    for purpose, group in by_purpose.items():
        statuses = consent_map(conn, {r["customer_id"] for r in group}, {r["channel"] for r in group}, purpose)
        for row in group:
            reason = consent_block_reason(purpose, statuses.get((row["customer_id"], row["channel"])))
            if reason:
                blocked[row["id"]] = (reason, detail)
    profiles = {
        r.id: r
        for r in conn.execute(
            sa.select(
                customers.c.id, *(customers.c[column] for pair in ADDRESS_FIELDS.values() for column in pair)
            ).where(customers.c.id.in_({r["customer_id"] for r in rows}))
        )
    }
    for row in rows:
        columns = ADDRESS_FIELDS.get(row["channel"])
        profile = profiles.get(row["customer_id"])
        if row["id"] in blocked or columns is None or profile is None:
            continue
        # only the address the row goes to counts: a profile changed since planning has its own rows
        address, flag = (getattr(profile, c) for c in columns)
        if address == row["address"] and address_block(dict(profile._mapping), row["channel"]) == "invalid_address":
            blocked[row["id"]] = ("invalid_address", str(flag))
    return blocked
