"""Reply windows of the social channels: a free-form message may go to a customer on WhatsApp only within 24
hours of their last message to the bank, on WeChat (customer-service messages) within 48 hours. Outside it a
step falls back to its fallback channel, or is suppressed with reason `window_closed`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.store.schema import inbound_messages

REPLY_WINDOWS = {"whatsapp": timedelta(hours=24), "wechat": timedelta(hours=48)}
REASON = "window_closed"


def open_windows(
    conn: Connection, customer_ids: Iterable[str], channels: Iterable[str], now: datetime
) -> set[tuple[str, str]]:
    """(customer, channel) pairs whose window is open now, for the windowed channels among `channels`."""
    windowed = [c for c in channels if c in REPLY_WINDOWS]
    ids = list(customer_ids)
    if not windowed or not ids:
        return set()
    m = inbound_messages.c
    rows = conn.execute(
        sa.select(m.customer_id, m.channel, sa.func.max(m.received_at))
        .where(m.customer_id.in_(ids), m.channel.in_(windowed))
        .group_by(m.customer_id, m.channel)
    ).all()
    return {
        (customer, channel)
        for customer, channel, last in rows
        if last is not None and now - _aware(last) <= REPLY_WINDOWS[channel]
    }


def _aware(moment: datetime) -> datetime:
    """SQLite hands back an aggregate's datetime without its zone: it is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
