"""Frequency caps: how many messages a customer may get in a window.

A marketing campaign is under a cap across all marketing campaigns (its own `frequency_cap`, else the
configured default). A service campaign is under no cap unless it declares one; then the cap counts that
campaign's own messages to the customer (all its occurrences and steps: "at most one payment reminder in
3 days"), never other service messages (an OTP or a fraud alert must not be held back by a reminder).

Checked twice. At plan time, every row under the cap already planned, queued or sent to the customer in the
window counts, so a plan does not pile onto a customer. At send time, the claimed row counts the rows sent
in the window plus the rows being sent right now that were planned before it (lower id): when two campaigns
race for one customer, the earlier row goes and the later one is suppressed, whichever worker is faster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.durations import format_duration, parse_duration
from outreach.core.settings import Settings
from outreach.store.ledger import DeliveryRow, Status, move
from outreach.store.schema import campaigns, customers, deliveries

REASON = "frequency_cap"
S = Status
# Rows that take up a place under the cap when planning: everything that has gone or will go...
_PLANNED = (S.PLANNED, S.QUEUED, S.SENDING, S.SENT, S.DELIVERED, S.UNKNOWN)
# ... and at send time: everything being sent or gone.
_GOING = (S.SENDING, S.SENT, S.DELIVERED, S.UNKNOWN)


Scope = Literal["marketing", "campaign"]


@dataclass(frozen=True)
class Cap:
    max: int
    per: timedelta
    # What counts: every marketing message, or the campaign's own messages (a service campaign's cap).
    scope: Scope = "marketing"

    @classmethod
    def parse(cls, text: str) -> Cap:
        """`2/7d` -> Cap(2, 7 days); `2/7d/campaign` -> the same over the campaign's own messages."""
        count, _, rest = text.partition("/")
        window, _, scope = rest.partition("/")
        return cls(int(count), parse_duration(window), "campaign" if scope == "campaign" else "marketing")

    def __str__(self) -> str:
        suffix = "/campaign" if self.scope == "campaign" else ""
        return f"{self.max}/{int(self.per.total_seconds())}s{suffix}"  # parses back with Cap.parse

    def counted(self, campaign_id: str) -> sa.ColumnElement[bool]:
        """The ledger rows that take up a place under this cap."""
        if self.scope == "campaign":
            return deliveries.c.campaign_id == campaign_id
        return deliveries.c.purpose == "marketing"

    def describe(self, count: int) -> str:
        what = "of this campaign's messages" if self.scope == "campaign" else "marketing messages"
        return f"{count} {what} within {format_duration(self.per)} (the cap is {self.max})"


def default_cap(settings: Settings) -> Cap | None:
    if settings.frequency_cap_max <= 0:
        return None
    return Cap(settings.frequency_cap_max, parse_duration(settings.frequency_cap_per))


def campaign_cap(purpose: str, declared: tuple[int, str] | None, settings: Settings) -> Cap | None:
    """The cap a campaign's messages are under: marketing its own, else the configured default; service only
    its own, over its own messages; other purposes (messages to staff) none."""
    if purpose == "service":
        return Cap(declared[0], parse_duration(declared[1]), "campaign") if declared is not None else None
    if purpose != "marketing":
        return None
    if declared is not None:
        return Cap(declared[0], parse_duration(declared[1]))
    return default_cap(settings)


def planned_counts(
    conn: Connection, customer_ids: Iterable[str], cap: Cap, campaign_id: str, since: datetime
) -> Counter[str]:
    """Rows under `cap` per customer planned, queued or sent since `since` (for the plan-time check)."""
    ids = list(customer_ids)
    if not ids:
        return Counter()
    d = deliveries.c
    rows = conn.execute(
        sa.select(d.customer_id, sa.func.count())
        .where(
            d.customer_id.in_(ids),
            cap.counted(campaign_id),
            d.status.in_(list(_PLANNED)),
            sa.func.coalesce(d.sent_at, d.created_at) >= since,
        )
        .group_by(d.customer_id)
    )
    return Counter({customer: int(n) for customer, n in rows})


def send_time_caps(engine: Engine, rows: Sequence[DeliveryRow], now: datetime) -> set[int]:
    """Ids of claimed marketing rows that would put their customer over the cap (the campaign's cap as it
    was recorded when the campaign was planned: its own or the default then configured).

    Each such row is suppressed at once, in a transaction that holds the customer's lock (a row lock on
    PostgreSQL; SQLite has one writer at a time): every other row of the customer that is being sent or
    has been sent counts. So of two rows racing for the last place, whichever is checked second sees the
    first: at most `max` ever go, never both of two. (A row checked while the other is claimed but not yet
    checked gives way to it.)
    """
    candidates = [r for r in rows if r["purpose"] in ("marketing", "service")]
    if not candidates:
        return set()
    over: set[int] = set()
    with engine.begin() as conn:
        declared = {
            r.id: Cap.parse(r.frequency_cap)
            for r in conn.execute(
                sa.select(campaigns.c.id, campaigns.c.frequency_cap).where(
                    campaigns.c.id.in_({r["campaign_id"] for r in candidates}), campaigns.c.frequency_cap.is_not(None)
                )
            )
        }
        capped = [r for r in candidates if r["campaign_id"] in declared]
        if not capped:
            return over
        customer_ids = sorted({r["customer_id"] for r in capped})
        conn.execute(
            sa.select(customers.c.id).where(customers.c.id.in_(customer_ids)).order_by(customers.c.id).with_for_update()
        ).all()
        d = deliveries.c

        # One count per customer and cap window for the whole batch (the batch's own rows, being sent, are
        # among them), then the rows in id order: each gives way when the others already fill the cap.
        # A marketing cap counts every marketing row; a campaign's own cap only its rows.
        def window_of(row: DeliveryRow) -> tuple[Cap, str | None]:
            cap = declared[row["campaign_id"]]
            return cap, (row["campaign_id"] if cap.scope == "campaign" else None)

        counts: dict[tuple[Cap, str | None], dict[str, int]] = {}
        for cap, campaign_id in {window_of(r) for r in capped}:
            counts[(cap, campaign_id)] = {
                customer: int(n)
                for customer, n in conn.execute(
                    sa.select(d.customer_id, sa.func.count())
                    .where(
                        d.customer_id.in_(customer_ids),
                        cap.counted(campaign_id or ""),
                        sa.func.coalesce(d.sent_at, d.claimed_at) >= now - cap.per,
                        d.status.in_(list(_GOING)),
                    )
                    .group_by(d.customer_id)
                )
            }
        for row in sorted(capped, key=lambda r: r["id"]):
            window = window_of(row)
            others = counts[window].get(row["customer_id"], 0) - 1  # this row is one of them
            if others >= window[0].max:
                over.add(row["id"])
                # the row will not go: it no longer counts in the windows it was counted in
                for (cap, campaign_id), per_customer in counts.items():
                    if row["purpose"] == "marketing" if cap.scope == "marketing" else row["campaign_id"] == campaign_id:
                        per_customer[row["customer_id"]] = per_customer.get(row["customer_id"], 0) - 1
        if over:
            detail = "frequency cap reached at send time"
            for token in {r["claim_token"] for r in capped if r["id"] in over}:
                move(
                    conn,
                    Status.SUPPRESSED,
                    over,
                    expect=[Status.SENDING],
                    token=token,
                    now=now,
                    values={"reason": REASON, "detail": detail, "finished_at": now},
                    describe=lambda r: {"reason": REASON, "detail": detail, "channel": r["channel"]},
                )
    return over
