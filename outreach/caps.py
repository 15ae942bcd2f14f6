"""Frequency caps: how many marketing messages a customer may get across all campaigns in a window.

Checked twice. At plan time, every marketing row already planned, queued or sent to the customer in the
window counts, so a plan does not pile onto a customer. At send time, the claimed row counts the rows sent
in the window plus the rows being sent right now that were planned before it (lower id): when two campaigns
race for one customer, the earlier row goes and the later one is suppressed, whichever worker is faster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.config import Settings
from outreach.durations import parse_duration
from outreach.schema import campaigns, customers, deliveries

REASON = "frequency_cap"
# Rows that take up a place under the cap when planning: everything that has gone or will go.
# (Ledger states spelled out: the ledger itself uses this module.)
_PLANNED = ("planned", "queued", "sending", "sent", "delivered", "unknown")


@dataclass(frozen=True)
class Cap:
    max: int
    per: timedelta

    @classmethod
    def parse(cls, text: str) -> Cap:
        """`2/7d` -> Cap(2, 7 days)."""
        count, _, window = text.partition("/")
        return cls(int(count), parse_duration(window))

    def __str__(self) -> str:
        return f"{self.max}/{int(self.per.total_seconds())}s"  # parses back with Cap.parse


def default_cap(settings: Settings) -> Cap | None:
    if settings.frequency_cap_max <= 0:
        return None
    return Cap(settings.frequency_cap_max, parse_duration(settings.frequency_cap_per))


def campaign_cap(purpose: str, declared: tuple[int, str] | None, settings: Settings) -> Cap | None:
    """The cap a campaign's messages are under: its own, else the configured default; none for service."""
    if purpose != "marketing":
        return None
    if declared is not None:
        return Cap(declared[0], parse_duration(declared[1]))
    return default_cap(settings)


def planned_counts(conn: Connection, customer_ids: Iterable[str], since: datetime) -> Counter[str]:
    """Marketing rows per customer planned, queued or sent since `since` (for the plan-time check)."""
    ids = list(customer_ids)
    if not ids:
        return Counter()
    d = deliveries.c
    rows = conn.execute(
        sa.select(d.customer_id, sa.func.count())
        .where(
            d.customer_id.in_(ids),
            d.purpose == "marketing",
            d.status.in_(list(_PLANNED)),
            sa.func.coalesce(d.sent_at, d.created_at) >= since,
        )
        .group_by(d.customer_id)
    )
    return Counter({customer: int(n) for customer, n in rows})


def send_time_caps(engine: Engine, rows: Sequence[dict[str, Any]], now: datetime) -> set[int]:
    """Ids of claimed marketing rows that would put their customer over the cap (the campaign's cap as it
    was recorded when the campaign was planned: its own or the default then configured).

    Each such row is suppressed at once, in a transaction that holds the customer's lock (a row lock on
    PostgreSQL; SQLite has one writer at a time): every other row of the customer that is being sent or
    has been sent counts. So of two rows racing for the last place, whichever is checked second sees the
    first: at most `max` ever go, never both of two. (A row checked while the other is claimed but not yet
    checked gives way to it.)
    """
    marketing = [r for r in rows if r["purpose"] == "marketing"]
    if not marketing:
        return set()
    over: set[int] = set()
    with engine.begin() as conn:
        declared = {
            r.id: r.frequency_cap
            for r in conn.execute(
                sa.select(campaigns.c.id, campaigns.c.frequency_cap).where(
                    campaigns.c.id.in_({r["campaign_id"] for r in marketing})
                )
            )
        }
        capped = [r for r in marketing if declared.get(r["campaign_id"])]
        if not capped:
            return over
        customer_ids = sorted({r["customer_id"] for r in capped})
        conn.execute(
            sa.select(customers.c.id).where(customers.c.id.in_(customer_ids)).order_by(customers.c.id).with_for_update()
        ).all()
        d = deliveries.c
        # One count per customer and cap window for the whole batch (the batch's own rows, being sent, are
        # among them), then the rows in id order: each gives way when the others already fill the cap.
        counts: dict[str, dict[str, int]] = {}
        for text in {declared[r["campaign_id"]] for r in capped}:
            window_start = now - Cap.parse(text).per
            counts[text] = {
                customer: int(n)
                for customer, n in conn.execute(
                    sa.select(d.customer_id, sa.func.count())
                    .where(
                        d.customer_id.in_(customer_ids),
                        d.purpose == "marketing",
                        sa.func.coalesce(d.sent_at, d.claimed_at) >= window_start,
                        d.status.in_(["sending", "sent", "delivered", "unknown"]),
                    )
                    .group_by(d.customer_id)
                )
            }
        for row in sorted(capped, key=lambda r: r["id"]):
            text = declared[row["campaign_id"]]
            others = counts[text].get(row["customer_id"], 0) - 1  # this row is one of them
            if others >= Cap.parse(text).max:
                over.add(row["id"])
                for per_customer in counts.values():
                    per_customer[row["customer_id"]] = per_customer.get(row["customer_id"], 0) - 1
        if over:
            conn.execute(
                deliveries.update()
                .where(
                    d.id.in_(sorted(over)),
                    d.claim_token.in_({r["claim_token"] for r in capped}),
                    d.status == "sending",
                )
                .values(
                    status="suppressed",
                    reason=REASON,
                    detail="frequency cap reached at send time",
                    finished_at=now,
                    updated_at=now,
                )
            )
    return over
