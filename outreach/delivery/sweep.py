"""The sweep: the ledger's own recovery from what the broker lost and what dead workers left half done.

The ledger is the truth, the broker is transport. Whatever Redis forgets (wiped, failed over, a worker killed
with its prefetched messages in an acks set nobody will requeue for a while) the ledger still knows, and the
sweep (`outreach sweep`, and the scheduler once a minute) puts it right, looking only at rows that have sat
still for longer than a limit (`sweep_after`, or `--older-than`):

* `queued` rows last enqueued (and not claimed since) before the limit, whose `not_before` has passed and
  whose retry came due before the limit, are enqueued again. A row enqueued twice is still sent once: only
  one claim can take it. Rows of a paused or cancelled campaign are left for `campaigns resume`.
* `sending` rows claimed before the limit and never handed to a provider (no `send_started_at`: the worker
  died before their turn came) go back to `queued` and are enqueued again (event `delivery.requeued`, why
  "never handed over"); the attempt the claim counted was not made.
* `sending` rows claimed before the limit and handed to a provider belong to a worker that died mid-call:
  the provider may or may not have sent them, so they become `unknown` (event `delivery.unknown`, with the
  claim time). The campaign's `on_unknown` decides what then: `hold` (the default) leaves them for an
  operator's replay; `resend` puts them back to `queued` and enqueues them (event `delivery.requeued`),
  unless the campaign is cancelled or the row has used up `max_attempts`. An `unknown` row keeps its claim,
  so the worker's result, should it arrive after all (it was slow, not dead), or the provider's status
  callback still settles it. A row sent again under `resend` has no such luck: a slow worker's message and
  the new one may both arrive, which is why `resend` is a campaign's choice and `sweep_after` is longer than
  a batch can legitimately take. Workers note each result within milliseconds of the provider's answer
  (outreach.delivery.send_recorder), so these rows are only the messages in flight when the worker died.
* deferred rows (quiet hours, holidays) whose `not_before` has passed are released
  (`outreach.delivery.deferred.release_due`).

Before all that, the spill files in `spill_dir` (providers' answers a worker held while the store was away,
outreach.delivery.spill) are applied, so a row whose answer was spilled is settled by it, not made `unknown`.

Every change is conditional on the state it leaves, and rows are taken in id order with `SKIP LOCKED`
(PostgreSQL), so a worker's claim or result, a status callback, or a second sweep racing with this one
never moves a row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.durations import parse_duration
from outreach.core.settings import Settings
from outreach.delivery.deferred import release_due
from outreach.delivery.spill import apply_spills
from outreach.planning.queueing import Transport, enqueue_in_batches
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status, move
from outreach.store.schema import campaigns, deliveries

log = logging.getLogger(__name__)

# Rows handled per transaction.
CHUNK = 1_000
# How often the scheduler sweeps.
SCHEDULED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did, in rows."""

    requeued: int = 0  # queued rows the broker had lost (or was slow with), enqueued again
    unstarted: int = 0  # sending rows past the limit that were never handed to a provider, queued again
    unknown: int = 0  # sending rows past the limit, now `unknown` ...
    resent: int = 0  # ... of which queued and enqueued again (on_unknown: resend)
    held: int = 0  # ... of which left `unknown` for an operator's replay (on_unknown: hold)
    released: int = 0  # deferred rows whose moment has come
    spilled: int = 0  # answers from spill files written to their rows (settling sending or unknown ones)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(
    engine: Engine, transport: Transport, settings: Settings, older_than: timedelta, now: datetime | None = None
) -> SweepReport:
    """Recover every row that has sat still longer than `older_than` before `now` (see the module's text)."""
    if older_than <= timedelta(0):
        raise ValueError("the sweep needs a positive limit")
    now = now or utcnow()
    cutoff = now - older_than
    spilled = apply_spills(engine, settings, transport).applied
    released = release_due(engine, transport, now, settings.batch_size)
    requeued = requeue_lost(engine, transport, cutoff, now, settings.batch_size)
    unstarted = requeue_unstarted(engine, transport, settings, cutoff, now)
    unknown, resent = give_up_abandoned(engine, transport, settings, cutoff, now)
    return SweepReport(requeued, unstarted, unknown, resent, unknown - resent, released, spilled)


def scheduled_sweep(
    engine: Engine, transport: Transport, settings: Settings, now: datetime, last: datetime | None
) -> SweepReport | None:
    """The scheduler's sweep with the configured limit (`sweep_after`), if the last one (at `last`) was at
    least SCHEDULED_EVERY ago; None when it was not due or failed (the failure is logged: the next tries again).
    """
    if last is not None and abs(now - last) < SCHEDULED_EVERY:
        return None
    try:
        report = sweep(engine, transport, settings, parse_duration(settings.sweep_after), now)
    except Exception:
        log.exception("the sweep failed; trying again at the next tick")
        return None
    if any(report.as_dict().values()):
        log.info("sweep: %s", ", ".join(f"{k} {v}" for k, v in report.as_dict().items()))
    return report


def requeue_lost(engine: Engine, transport: Transport, cutoff: datetime, now: datetime, batch_size: int) -> int:
    """Enqueue again the queued rows nothing has touched since `cutoff`; returns how many."""
    d = deliveries.c
    inactive = sa.select(campaigns.c.id).where(campaigns.c.state != "active")
    stale = sa.and_(
        d.status == Status.QUEUED,
        sa.or_(d.enqueued_at.is_(None), d.enqueued_at < cutoff),
        sa.or_(d.claimed_at.is_(None), d.claimed_at < cutoff),
        sa.or_(d.not_before.is_(None), d.not_before <= now),
        # A retry's broker message is due at next_attempt_at: it too gets the whole limit from then on.
        sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at < cutoff),
        d.campaign_id.not_in(inactive),
    )
    total = 0
    while True:
        with engine.begin() as conn:
            ids = _lock(conn, sa.select(d.id).where(stale))
            if ids:
                conn.execute(deliveries.update().where(d.id.in_(ids), stale).values(enqueued_at=now, updated_at=now))
        enqueue_in_batches(transport, ids, batch_size)
        total += len(ids)
        if len(ids) < CHUNK:
            return total


def requeue_unstarted(engine: Engine, transport: Transport, settings: Settings, cutoff: datetime, now: datetime) -> int:
    """Put rows claimed before `cutoff` but never handed to a provider back to `queued` and enqueue them;
    returns how many. The worker's own note that it hands one over now and this move wait for each other
    (row locks, both conditional on the row being `sending` without the note), so only one of them wins."""
    d = deliveries.c
    unstarted = sa.and_(d.status == Status.SENDING, d.claimed_at < cutoff, d.send_started_at.is_(None))
    total = 0
    while True:
        with engine.begin() as conn:
            ids = _lock(conn, sa.select(d.id).where(unstarted))
            moved = move(
                conn,
                Status.QUEUED,
                ids,
                expect=[Status.SENDING],
                where=sa.and_(d.claimed_at < cutoff, d.send_started_at.is_(None)),
                now=now,
                values={
                    "attempts": d.attempts - 1,  # the claim counted an attempt that was not made
                    "claim_token": None,
                    "claimed_at": None,
                    "enqueued_at": now,
                },
                event="delivery.requeued",
                describe=lambda r: {"channel": r["channel"], "why": "never handed over (the worker stopped first)"},
            )
        again = [row["id"] for row in moved]
        enqueue_in_batches(transport, again, settings.batch_size)
        total += len(again)
        if len(ids) < CHUNK:
            return total


def give_up_abandoned(
    engine: Engine, transport: Transport, settings: Settings, cutoff: datetime, now: datetime
) -> tuple[int, int]:
    """Turn rows claimed before `cutoff` and still `sending` into `unknown`, then apply each campaign's
    `on_unknown`; returns (rows made unknown, rows of those queued again)."""
    d = deliveries.c
    abandoned = sa.and_(d.status == Status.SENDING, d.claimed_at < cutoff, d.send_started_at.is_not(None))
    columns = (d.id, d.customer_id, d.campaign_id, d.channel, d.attempts, d.claimed_at)
    query = (
        sa.select(*columns, campaigns.c.on_unknown, campaigns.c.state)
        .select_from(deliveries.outerjoin(campaigns, campaigns.c.id == d.campaign_id))
        .where(abandoned)
    )
    unknown = resent = 0
    while True:
        with engine.begin() as conn:
            rows = {r.id: r for r in _lock_rows(conn, query)}
            decisions = {delivery_id: _policy(row, settings) for delivery_id, row in rows.items()}
            move(
                conn,
                Status.UNKNOWN,
                list(rows),
                expect=[Status.SENDING],
                where=sa.and_(d.claimed_at < cutoff, d.send_started_at.is_not(None)),
                now=now,
                describe=lambda r: _unknown_event(r, decisions[r["id"]]),  # noqa: B023 (called before the loop goes on)
            )
            again = [delivery_id for delivery_id, (policy, _) in decisions.items() if policy == "resend"]
            move(
                conn,
                Status.QUEUED,
                again,
                expect=[Status.UNKNOWN],
                now=now,
                values={"claim_token": None, "claimed_at": None, "next_attempt_at": None, "enqueued_at": now},
                event="delivery.requeued",
                describe=lambda r: {"channel": r["channel"], "why": "on_unknown: resend"},
            )
        enqueue_in_batches(transport, again, settings.batch_size)
        unknown += len(rows)
        resent += len(again)
        if len(rows) < CHUNK:
            return unknown, resent


def _lock(conn: Connection, query: sa.Select[Any]) -> list[int]:
    """The first CHUNK ids the query selects, in id order, locked (PostgreSQL; SQLite locks the database)."""
    locked = query.order_by(deliveries.c.id).limit(CHUNK).with_for_update(skip_locked=True)
    return list(conn.execute(locked).scalars())


def _lock_rows(conn: Connection, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
    locked = query.order_by(deliveries.c.id).limit(CHUNK).with_for_update(of=deliveries, skip_locked=True)
    return conn.execute(locked).all()


def _policy(row: sa.Row[Any], settings: Settings) -> tuple[str, str | None]:
    """What becomes of an unknown row: ("resend", None), or ("hold", why resend was not possible)."""
    if (row.on_unknown or "hold") != "resend":
        return "hold", None
    if row.state == "cancelled":
        return "hold", "the campaign is cancelled"
    if row.attempts >= settings.max_attempts:
        return "hold", f"{row.attempts} attempts made (max_attempts {settings.max_attempts})"
    return "resend", None


def _unknown_event(row: DeliveryRow, decision: tuple[str, str | None]) -> dict[str, Any]:
    policy, why = decision
    claimed_at = row["claimed_at"]
    data: dict[str, Any] = {
        "channel": row["channel"],
        "attempt": row["attempts"],
        "claimed_at": claimed_at.isoformat(timespec="seconds") if claimed_at else None,
        "on_unknown": policy,
    }
    if why:
        data["why"] = why
    return data
