"""The delivery ledger and its state machine: the only code that writes a delivery's `status`.

    planned -> queued -> sending -> sent -> delivered | undelivered | failed (a provider's report, a bounce)
                  ^         |-> failed      (permanent error)
                  |---------|               (transient error: attempt+1, next_attempt_at; a claim given back)
                            |-> dead        (transient errors used up the attempts)
                            |-> unknown     (worker died mid-call; set by the sweep)
                            |-> suppressed  (consent, address, window or cap found at send time)
    planned | queued -> suppressed (reason; cancelled)
    failed | dead | unknown -> queued | suppressed (an operator's replay)

`TRANSITIONS` is that table; `move` is the one function that changes a row's status. It refuses a move the
table does not allow (ForbiddenMove, before anything is written), changes only rows that are still in one
of the states it was told to expect (so a duplicated broker message, a second worker or a late retry can
never move a row twice), sets `updated_at`, and writes one event on the customer's timeline per row moved,
in the caller's transaction. New rows are made by `new_row` and written by `insert_rows`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.store.bulk_copy import copy_insert_returning, is_postgresql
from outreach.store.database import insert_returning, utcnow
from outreach.store.events import add_events, event_row
from outreach.store.schema import campaigns, deliveries


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


S = Status
# What the provider's word may settle, whatever the engine thought of the row: a report or a late result.
_SETTLED_BY_PROVIDER = frozenset({S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED})
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.PLANNED: frozenset({S.QUEUED, S.SUPPRESSED}),
    # a report can settle a row whose retry waits in the queue
    S.QUEUED: frozenset({S.SENDING, S.SUPPRESSED}) | _SETTLED_BY_PROVIDER,
    S.SENDING: frozenset({S.QUEUED, S.DEAD, S.UNKNOWN, S.SUPPRESSED}) | _SETTLED_BY_PROVIDER,
    # a result may arrive after the sweep gave the row up: what the provider said still wins
    S.UNKNOWN: frozenset({S.QUEUED, S.DEAD, S.SUPPRESSED}) | _SETTLED_BY_PROVIDER,
    S.DEAD: frozenset({S.QUEUED, S.SUPPRESSED}) | _SETTLED_BY_PROVIDER,
    S.SENT: frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED}),
    S.FAILED: frozenset({S.QUEUED, S.SUPPRESSED}),  # replay
    S.DELIVERED: frozenset(),
    S.UNDELIVERED: frozenset(),
    S.SUPPRESSED: frozenset(),
}

_COLUMNS = frozenset(deliveries.c.keys())
# From this many rows on, PostgreSQL gets them through COPY (see store.bulk_copy).
COPY_FROM = 50

# Rows that may still be sent without an operator's replay.
OPEN_STATES = (Status.PLANNED, Status.QUEUED, Status.SENDING)

# Purpose of messages to the bank's own staff about a customer: no consent, address or reply-window checks.
INTERNAL = "internal"


class ForbiddenMove(ValueError):
    """A move the ledger's table does not allow; raised before anything is written."""


class DeliveryRow(TypedDict):
    """One row of the ledger, as it crosses the store's boundary."""

    id: int
    idempotency_key: str
    campaign_id: str
    occurrence: str
    step_id: str
    customer_id: str
    channel: str
    purpose: str
    status: str
    reason: str | None
    detail: str | None
    address: str | None
    subject: str | None
    body: str | None
    html: str | None
    headers: dict[str, str] | None
    sms_segments: int | None
    expects: dict[str, Any] | None
    variant: str | None
    attempts: int
    not_before: datetime | None
    next_attempt_at: datetime | None
    enqueued_at: datetime | None
    claimed_at: datetime | None
    claim_token: str | None
    send_started_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    finished_at: datetime | None
    replied_at: datetime | None
    opted_out_at: datetime | None
    provider: str | None
    provider_message_id: str | None
    error_code: str | None
    error_message: str | None
    conversation_id: int | None
    content_id: int | None
    created_at: datetime
    updated_at: datetime


def as_row(mapping: sa.RowMapping | Mapping[str, Any]) -> DeliveryRow:
    """A row read from the `deliveries` table, typed."""
    return cast(DeliveryRow, dict(mapping))


def check_move(expect: Collection[Status | str], to: Status) -> None:
    """Raise ForbiddenMove unless every state in `expect` may move to `to`."""
    if not expect:
        raise ForbiddenMove(f"a move to {to} must say which states it leaves")
    for state in expect:
        if to not in TRANSITIONS[Status(state)]:
            raise ForbiddenMove(f"a delivery may not go from {state} to {to}")


def move(
    conn: Connection,
    to: Status,
    ids: Collection[int],
    *,
    expect: Collection[Status | str],
    now: datetime,
    values: Mapping[str, Any] | None = None,
    per_row: Mapping[int, Mapping[str, Any]] | None = None,
    token: str | None = None,
    tokens: Mapping[int, str | None] | None = None,
    where: sa.ColumnElement[bool] | None = None,
    event: str | None = None,
    describe: Callable[[DeliveryRow], Mapping[str, Any]] | None = None,
) -> list[DeliveryRow]:
    """Move the rows `ids` that are in one of the states `expect` (and, with `token`, still claimed by it, or
    with `tokens`, each still claimed by its own; with `where`, matching it) to `to`, in `conn`'s transaction.
    Returns the rows moved, as they were before.

    `values` are more columns set on every row (SQL expressions allowed), `per_row` more columns per row id.
    Each row moved gets the timeline event `event` (default `delivery.<to>`) with `describe(row)` as its data
    (default: the channel). The rows are locked first (PostgreSQL), in id order, so concurrent moves never
    deadlock.
    """
    check_move(expect, to)
    if not ids:
        return []
    d = deliveries.c
    states = sorted({str(s) for s in expect})
    # OR, not IN: executemany (per_row) takes no IN lists
    guard: list[sa.ColumnElement[bool]] = [sa.or_(*(d.status == s for s in states))]
    if token is not None:
        guard.append(d.claim_token == token)
    if where is not None:
        guard.append(where)

    def selecting(row_ids: Collection[int]) -> sa.ColumnElement[bool]:
        if tokens is None:
            return d.id.in_(sorted(set(row_ids)))
        return sa.tuple_(d.id, d.claim_token).in_(sorted((i, tokens[i]) for i in set(row_ids)))

    found = [
        as_row(r)
        for r in conn.execute(
            sa.select(deliveries).where(selecting(ids), *guard).order_by(d.id).with_for_update()
        ).mappings()
    ]
    if not found:
        return []
    common = {**(values or {}), "status": str(to), "updated_at": now}
    if per_row is None:
        conn.execute(deliveries.update().where(selecting([r["id"] for r in found]), *guard).values(common))
    else:
        keys = sorted({k for r in found for k in per_row.get(r["id"], {})})
        row_guard = [d.claim_token == sa.bindparam("m_claim")] if tokens is not None else []
        statement = (
            deliveries.update()
            .where(d.id == sa.bindparam("m_id"), *guard, *row_guard)
            .values({**common, **{k: sa.bindparam(f"m_{k}") for k in keys}})
        )
        conn.execute(
            statement,
            [
                {
                    "m_id": r["id"],
                    **({"m_claim": r["claim_token"]} if tokens is not None else {}),
                    **{f"m_{k}": per_row.get(r["id"], {}).get(k) for k in keys},
                }
                for r in found
            ],
        )
    kind = event or f"delivery.{to}"
    add_events(
        conn,
        [
            event_row(
                r["customer_id"],
                kind,
                describe(r) if describe else {"channel": r["channel"]},
                at=now,
                delivery_id=r["id"],
                campaign_id=r["campaign_id"],
            )
            for r in found
        ],
    )
    return found


def new_row(
    *,
    campaign_id: str,
    occurrence: str,
    step_id: str,
    customer_id: str,
    channel: str,
    purpose: str,
    address: str | None,
    now: datetime,
    suppressed: tuple[str, str | None] | None = None,
    **content: Any,
) -> dict[str, Any]:
    """A ledger row not yet written: `queued` (enqueued now), or `suppressed` with (reason, detail).

    Its idempotency key (campaign:occurrence:step:customer:channel) is what makes planning the same message
    twice write it once. `content` holds the message's own columns (subject, body, html, headers, ...).
    """
    unknown = content.keys() - _COLUMNS
    if unknown:
        raise TypeError(f"not columns of the ledger: {', '.join(sorted(unknown))}")
    reason, detail = suppressed or (None, None)
    return {
        "idempotency_key": f"{campaign_id}:{occurrence}:{step_id}:{customer_id}:{channel}",
        "campaign_id": campaign_id,
        "occurrence": occurrence,
        "step_id": step_id,
        "customer_id": customer_id,
        "channel": channel,
        "purpose": purpose,
        "status": str(Status.SUPPRESSED if suppressed else Status.QUEUED),
        "reason": reason,
        "detail": detail,
        "address": address,
        "attempts": 0,
        "enqueued_at": None if suppressed else now,
        "finished_at": now if suppressed else None,
        "created_at": now,
        "updated_at": now,
        **content,
    }


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """Write rows made by `new_row`, skipping those whose idempotency key is already in the ledger; returns
    (id, idempotency_key, status) of the rows written."""
    returning = ("id", "idempotency_key", "status")
    if is_postgresql(conn) and len(rows) >= COPY_FROM:
        written = copy_insert_returning(conn, deliveries, rows, returning)
    else:
        written = insert_returning(conn, deliveries, rows, returning)
    return [(int(i), k, s) for i, k, s in written]


def queue_one(conn: Connection, row: dict[str, Any], event: str, data: Mapping[str, Any], now: datetime) -> int:
    """Write one message made by `new_row` (an operator's reply, an escalation) with its event on the
    customer's timeline; returns its id (that of the row already written under its key, if any)."""
    written = insert_rows(conn, [row])
    if not written:
        existing = conn.execute(
            sa.select(deliveries.c.id).where(deliveries.c.idempotency_key == row["idempotency_key"])
        ).scalar_one()
        return int(existing)
    delivery_id = written[0][0]
    add_events(
        conn,
        [event_row(row["customer_id"], event, data, at=now, delivery_id=delivery_id, campaign_id=row["campaign_id"])],
    )
    return delivery_id


_SENT_VALUES = sa.values(
    sa.column("v_id", sa.BigInteger),
    sa.column("v_claim", sa.String),
    sa.column("v_provider", sa.String),
    sa.column("v_provider_id", sa.String),
    name="sent_rows",
)
_SENDING_OR_UNKNOWN = (Status.SENDING, Status.UNKNOWN)


def move_to_sent(
    conn: Connection,
    sent: Mapping[int, tuple[str | None, Mapping[str, Any], Mapping[str, Any]]],
    rows: Mapping[int, DeliveryRow],
    now: datetime,
) -> list[int]:
    """Move rows that went out to `sent`: `sent` maps a row id to (the claim it was sent under, its columns
    `provider` and `provider_message_id`, its event data). Only rows still `sending` or `unknown` under that
    claim move (a result may arrive after the sweep gave the row up: what the provider said still wins).
    The commonest move of all, written many times a second: on PostgreSQL one UPDATE from a VALUES list and
    one INSERT of the events, whatever the number of rows; elsewhere `move`. Returns the ids moved."""
    if not sent:
        return []
    check_move(_SENDING_OR_UNKNOWN, Status.SENT)
    if not is_postgresql(conn):
        moved = move(
            conn,
            Status.SENT,
            list(sent),
            expect=_SENDING_OR_UNKNOWN,
            tokens={i: claim for i, (claim, _, _) in sent.items()},
            now=now,
            per_row={i: {**columns, "sent_at": now, "error_code": None, "error_message": None}
                     for i, (_, columns, _) in sent.items()},
            event="delivery.sent",
            describe=lambda r: sent[r["id"]][2],
        )  # fmt: skip
        return [r["id"] for r in moved]
    d = deliveries.c
    # lock in id order first, as `move` does, so this and a concurrent move of the same rows never deadlock
    conn.execute(sa.select(d.id).where(d.id.in_(sorted(sent))).order_by(d.id).with_for_update())
    values = _SENT_VALUES.data(
        [(i, claim, columns.get("provider"), columns.get("provider_message_id"))
         for i, (claim, columns, _) in sorted(sent.items())]
    )  # fmt: skip
    update = (
        sa.update(deliveries)
        .where(
            d.id == values.c.v_id,
            d.claim_token == values.c.v_claim,
            d.status.in_([str(s) for s in _SENDING_OR_UNKNOWN]),
        )
        .values(
            status=str(Status.SENT),
            updated_at=now,
            sent_at=now,
            provider=values.c.v_provider,
            provider_message_id=values.c.v_provider_id,
            error_code=None,
            error_message=None,
        )
        .returning(d.id)
    )
    moved_ids = sorted(conn.execute(update).scalars())
    add_events(
        conn,
        [
            event_row(
                rows[i]["customer_id"],
                "delivery.sent",
                sent[i][2],
                at=now,
                delivery_id=i,
                campaign_id=rows[i]["campaign_id"],
            )
            for i in moved_ids
        ],
    )
    return moved_ids


def claim(engine: Engine, ids: Sequence[int]) -> list[DeliveryRow]:
    """Take `queued` rows for sending; rows already taken, deferred, or of a paused or cancelled campaign are
    left alone. Returns the claimed rows as they are now (in id order). Two workers given the same ids get
    disjoint sets.
    """
    if not ids:
        return []
    token = uuid.uuid4().hex
    now = utcnow()
    d = deliveries.c
    with engine.begin() as conn:
        moved = move(
            conn,
            Status.SENDING,
            ids,
            expect=[Status.QUEUED],
            now=now,
            values={"claim_token": token, "claimed_at": now, "send_started_at": None, "attempts": d.attempts + 1},
            where=sa.and_(
                sa.or_(d.not_before.is_(None), d.not_before <= now),
                d.campaign_id.not_in(sa.select(campaigns.c.id).where(campaigns.c.state != "active")),
            ),
            describe=lambda r: {"attempt": r["attempts"] + 1, "channel": r["channel"]},
        )
    # the rows as the UPDATE left them, without reading them again
    return [
        {**r, "status": str(Status.SENDING), "claim_token": token, "claimed_at": now, "send_started_at": None,
         "attempts": r["attempts"] + 1, "updated_at": now}
        for r in moved
    ]  # fmt: skip


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


__all__ = [
    "INTERNAL",
    "OPEN_STATES",
    "TRANSITIONS",
    "DeliveryRow",
    "ForbiddenMove",
    "Status",
    "as_row",
    "check_move",
    "claim",
    "insert_rows",
    "move",
    "new_row",
    "open_count",
    "queue_one",
]
