"""The delivery ledger's state machine: claiming rows for sending and recording what happened.

    planned -> queued -> sending -> sent -> delivered | undelivered
                  ^         |-> failed   (permanent error)
                  |---------|  (transient error: attempt+1, next_attempt_at)
                            |-> dead     (transient errors used up the attempts)
                            |-> unknown  (worker died mid-call; set by the sweeper)
    planned -> suppressed (reason)

Every change is conditional on the state it leaves, so a duplicated broker message, a second worker or a
late retry can never move a row twice.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.channels.base import Outcome, SendResult
from outreach.core.settings import Settings
from outreach.customers.profiles import consent_block_reason, consent_map, set_consent
from outreach.customers.reply_windows import REASON as WINDOW_CLOSED
from outreach.customers.reply_windows import REPLY_WINDOWS, open_windows
from outreach.planning.caps import send_time_caps
from outreach.store.database import insert_returning, utcnow
from outreach.store.events import EventRow, add_events, event_row
from outreach.store.fields import ADDRESS_FIELDS, invalid_reason
from outreach.store.schema import campaigns, customers, deliveries


class Status(StrEnum):
    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    DEAD = "dead"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"


# Rows that may still be sent without an operator's replay.
OPEN_STATES = (Status.PLANNED, Status.QUEUED, Status.SENDING)

# Purpose of messages to the bank's own staff about a customer: no consent, address or reply-window checks.
INTERNAL = "internal"


@dataclass
class RetryPlan:
    """Rows put back to `queued` after a transient error, grouped by how long to wait (milliseconds)."""

    by_delay: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, delay_ms: int, delivery_id: int) -> None:
        self.by_delay[delay_ms].append(delivery_id)


def queue_one(conn: Connection, row: Mapping[str, Any], event: str, data: Mapping[str, Any], now: datetime) -> int:
    """Write one message written by hand (an operator's reply, an escalation) as `queued`, with its event on
    the customer's timeline; returns its id. `row` holds the message's own columns."""
    full = {"status": Status.QUEUED, "attempts": 0, "enqueued_at": now, "created_at": now, "updated_at": now, **row}
    [(delivery_id,)] = insert_returning(conn, deliveries, [full], ("id",))
    add_events(
        conn,
        [event_row(full["customer_id"], event, data, at=now, delivery_id=delivery_id, campaign_id=full["campaign_id"])],
    )
    return int(delivery_id)


def claim(engine: Engine, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Take `queued` rows for sending with one conditional UPDATE; rows already taken are left alone.

    Returns the claimed rows. Two workers given the same ids get disjoint sets.
    """
    if not ids:
        return []
    token = uuid.uuid4().hex
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.status == Status.QUEUED,
                sa.or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
                # a paused or cancelled campaign's rows stay where they are
                deliveries.c.campaign_id.not_in(sa.select(campaigns.c.id).where(campaigns.c.state != "active")),
            )
            .values(
                status=Status.SENDING,
                claim_token=token,
                claimed_at=now,
                attempts=deliveries.c.attempts + 1,
                updated_at=now,
            )
        )
        if result.rowcount == 0:
            return []
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(deliveries).where(deliveries.c.claim_token == token, deliveries.c.status == Status.SENDING)
            ).mappings()
        ]
        add_events(
            conn,
            [
                event_row(
                    r["customer_id"],
                    "delivery.sending",
                    {"attempt": r["attempts"], "channel": r["channel"]},
                    at=now,
                    delivery_id=r["id"],
                    campaign_id=r["campaign_id"],
                )
                for r in rows
            ],
        )
    return rows


def send_time_blocks(engine: Engine, rows: Sequence[dict[str, Any]]) -> dict[int, tuple[str, str]]:
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


def closed_window_blocks(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> dict[int, tuple[str, str]]:
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
    conn: Connection, rows: Sequence[dict[str, Any]], detail: str
) -> dict[int, tuple[str, str]]:
    """Rows whose customer has withdrawn consent for the row's purpose and channel, or whose address (still
    the profile's) has been found unusable: delivery id -> (reason, detail). Used at send time and by replay.

    Rows with purpose `INTERNAL` go to the bank's own staff, not to the customer: they are never blocked here.
    """
    rows = [r for r in rows if r["purpose"] != INTERNAL]
    if not rows:
        return {}
    blocked: dict[int, tuple[str, str]] = {}
    by_purpose: dict[str, list[dict[str, Any]]] = defaultdict(list)
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
        address, flag = (getattr(profile, c) for c in columns)
        if address == row["address"] and flag:
            blocked[row["id"]] = ("invalid_address", str(flag))
    return blocked


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Doubling backoff from `retry_backoff`, capped, with a little jitter so retries do not stampede."""
    base = min(settings.retry_backoff * (2 ** max(attempts - 1, 0)), settings.retry_backoff_max)
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def record_outcomes(
    engine: Engine,
    claimed: Sequence[dict[str, Any]],
    results: Iterable[SendResult],
    blocked: dict[int, tuple[str, str]],
    settings: Settings,
    provider_names: Mapping[str, str] | None = None,
) -> RetryPlan:
    """Write every result of a batch in one transaction; returns the rows to enqueue again later.

    `provider_names` says which provider served each channel, for the ledger's `provider` column.
    """
    provider_names = provider_names or {}
    now = utcnow()
    rows = {r["id"]: r for r in claimed}
    retry = RetryPlan()
    updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
    new_events: list[EventRow] = []
    opted_out: list[dict[str, Any]] = []
    invalid: list[tuple[dict[str, Any], SendResult]] = []

    def note(row: dict[str, Any], kind: str, data: dict[str, Any]) -> None:
        new_events.append(
            event_row(row["customer_id"], kind, data, at=now, delivery_id=row["id"], campaign_id=row["campaign_id"])
        )

    for delivery_id, (reason, detail) in blocked.items():
        row = rows[delivery_id]
        updates["suppressed"].append(
            {"b_id": delivery_id, "b_token": row["claim_token"], "reason": reason, "detail": detail}
        )
        note(row, "delivery.suppressed", {"reason": reason, "detail": detail, "channel": row["channel"]})

    for result in results:
        row = rows[result.delivery_id]
        base = {"b_id": row["id"], "b_token": row["claim_token"], "provider": provider_names.get(row["channel"])}
        error = {"error_code": result.error_code, "error_message": result.error}
        if result.outcome is Outcome.SENT:
            updates["sent"].append({**base, "provider_message_id": result.provider_id})
            note(row, "delivery.sent", {"channel": row["channel"], "provider_id": result.provider_id})
        elif result.outcome is Outcome.PERMANENT:
            updates["failed"].append({**base, **error})
            note(row, "delivery.failed", {"channel": row["channel"], **error})
            if result.recipient_opted_out:
                opted_out.append(row)
            if result.address_invalid:
                invalid.append((row, result))
        elif row["attempts"] >= settings.max_attempts:
            updates["dead"].append({**base, **error})
            note(row, "delivery.dead", {"channel": row["channel"], "attempts": row["attempts"], **error})
        else:
            delay = retry_delay(settings, row["attempts"])
            updates["retry"].append({**base, **error, "next_attempt_at": now + delay})
            retry.add(int(delay.total_seconds() * 1000), row["id"])
            note(
                row,
                "delivery.retry",
                {
                    "channel": row["channel"],
                    "attempt": row["attempts"],
                    "retry_in_s": round(delay.total_seconds(), 1),
                    **error,
                },
            )

    with engine.begin() as conn:
        _apply(conn, updates, now)
        for row in opted_out:
            for purpose in ("marketing", "service"):
                set_consent(
                    conn, row["customer_id"], row["channel"], purpose, "revoked", "provider:recipient-opted-out", at=now
                )
        for row, result in invalid:
            mark_address_invalid(
                conn, row, f"{provider_names.get(row['channel'], 'provider')} error {result.error_code}", now
            )
        add_events(conn, new_events)
    return retry


def _apply(conn: Connection, updates: dict[str, list[dict[str, Any]]], now: datetime) -> None:
    d = deliveries.c
    # A result may arrive after the sweeper gave the row up as `unknown`: what the provider said still wins.
    mine = sa.and_(
        d.id == sa.bindparam("b_id"),
        d.claim_token == sa.bindparam("b_token"),
        sa.or_(d.status == Status.SENDING, d.status == Status.UNKNOWN),  # executemany: no IN lists
    )

    def update(**values: Any) -> sa.Update:
        return deliveries.update().where(mine).values(updated_at=now, **values)

    provider: sa.BindParameter[str] = sa.bindparam("provider")
    error: dict[str, sa.BindParameter[str]] = {
        "error_code": sa.bindparam("error_code"),
        "error_message": sa.bindparam("error_message"),
    }
    statements = {
        "sent": update(
            status=Status.SENT,
            provider=provider,
            sent_at=now,
            provider_message_id=sa.bindparam("provider_message_id"),
            error_code=None,
            error_message=None,
        ),
        "failed": update(status=Status.FAILED, provider=provider, finished_at=now, **error),
        "dead": update(status=Status.DEAD, provider=provider, finished_at=now, **error),
        "retry": update(
            status=Status.QUEUED,
            provider=provider,
            enqueued_at=now,
            next_attempt_at=sa.bindparam("next_attempt_at"),
            **error,
        ),
        "suppressed": update(
            status=Status.SUPPRESSED, finished_at=now, reason=sa.bindparam("reason"), detail=sa.bindparam("detail")
        ),
    }
    for kind, params in updates.items():
        if params:
            conn.execute(statements[kind], params)


def mark_address_invalid(conn: Connection, row: dict[str, Any], why: str, now: datetime) -> None:
    """The provider says this address cannot receive: flag it on the profile (if it is still the profile's)."""
    columns = ADDRESS_FIELDS.get(row["channel"])
    if columns is None:
        return
    address_column, flag_column = columns
    result = conn.execute(
        customers.update()
        .where(customers.c.id == row["customer_id"], customers.c[address_column] == row["address"])
        .values({flag_column: invalid_reason(why), "updated_at": now})
    )
    if result.rowcount:
        add_events(
            conn,
            [
                event_row(
                    row["customer_id"],
                    "address.invalid",
                    {"channel": row["channel"], "address": row["address"], "why": why},
                    at=now,
                    delivery_id=row["id"],
                    campaign_id=row["campaign_id"],
                )
            ],
        )


def open_count(conn: Connection, campaign_id: str, occurrence: str | None = None) -> int:
    """Rows of a campaign (run) that may be sent now: planned, queued or sending, and not deferred to later
    (quiet hours, holidays)."""
    now = utcnow()
    query = (
        sa.select(sa.func.count())
        .select_from(deliveries)
        .where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.status.in_(list(OPEN_STATES)),
            sa.or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= now),
        )
    )
    if occurrence is not None:
        query = query.where(deliveries.c.occurrence == occurrence)
    return int(conn.execute(query).scalar_one())
