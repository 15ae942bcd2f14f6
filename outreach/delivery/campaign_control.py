"""Pause, resume and cancel a campaign.

Pausing stops sending without touching the ledger: a worker's claim skips the rows of a campaign that is
not active, so they stay `queued` (what a worker was already sending finishes). Resuming hands the queued
rows to the workers again; since only a claim can send a row, pausing and resuming sends nobody anything
twice. Cancelling suppresses every row that has not gone (reason `cancelled`), and the scheduler fires no
more occurrences or follow-ups of it until it is resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.errors import InputError
from outreach.planning.queueing import Transport, enqueue_when_due
from outreach.store import audit
from outreach.store.database import utcnow
from outreach.store.ledger import Status, move
from outreach.store.schema import campaigns, deliveries

_CHUNK = 5_000


@dataclass(frozen=True)
class ControlResult:
    campaign_id: str
    state: str
    rows: int  # rows re-enqueued (resume) or suppressed (cancel); rows left waiting (pause)


def _state(engine: Engine, campaign_id: str) -> str:
    with engine.connect() as conn:
        state = conn.execute(sa.select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar()
    if state is None:
        raise InputError.single(campaign_id, "no such campaign (it has never been planned)")
    return str(state)


def pause(engine: Engine, campaign_id: str, actor: str, reason: str | None) -> ControlResult:
    if _state(engine, campaign_id) == "cancelled":
        raise InputError.single(campaign_id, "the campaign is cancelled; resume it first")
    now = utcnow()
    d = deliveries.c
    with engine.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(state="paused", updated_at=now))
        waiting = conn.execute(
            sa.select(sa.func.count()).where(d.campaign_id == campaign_id, d.status == Status.QUEUED)
        ).scalar_one()
        audit.record(conn, actor, "pause", target=campaign_id, reason=reason, rows=int(waiting), at=now)
    return ControlResult(campaign_id, "paused", int(waiting))


def resume(
    engine: Engine, campaign_id: str, transport: Transport, batch_size: int, actor: str, reason: str | None
) -> ControlResult:
    _state(engine, campaign_id)
    now = utcnow()
    d = deliveries.c
    with engine.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(state="active", updated_at=now))
        queued = conn.execute(
            sa.select(d.id, d.not_before).where(d.campaign_id == campaign_id, d.status == Status.QUEUED).order_by(d.id)
        ).all()
        if queued:
            conn.execute(
                deliveries.update()
                .where(d.campaign_id == campaign_id, d.status == Status.QUEUED)
                .values(enqueued_at=now, updated_at=now)
            )
        audit.record(conn, actor, "resume", target=campaign_id, reason=reason, rows=len(queued), at=now)
    enqueue_when_due(transport, [(r.id, r.not_before) for r in queued], batch_size, now)
    return ControlResult(campaign_id, "active", len(queued))


def cancel(engine: Engine, campaign_id: str, actor: str, reason: str | None) -> ControlResult:
    _state(engine, campaign_id)
    now = utcnow()
    d = deliveries.c
    total = 0
    with engine.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(state="cancelled", updated_at=now))
        while True:
            rows = conn.execute(
                sa.select(d.id, d.customer_id, d.channel)
                .where(d.campaign_id == campaign_id, d.status.in_([Status.PLANNED, Status.QUEUED]))
                .order_by(d.id)
                .limit(_CHUNK)
            ).all()
            if not rows:
                break
            move(
                conn,
                Status.SUPPRESSED,
                [r.id for r in rows],
                expect=[Status.PLANNED, Status.QUEUED],
                now=now,
                values={"reason": "cancelled", "detail": f"cancelled by {actor}", "finished_at": now},
                describe=lambda r: {"reason": "cancelled", "channel": r["channel"], "by": actor},
            )
            total += len(rows)
        audit.record(conn, actor, "cancel", target=campaign_id, reason=reason, rows=total, at=now)
    return ControlResult(campaign_id, "cancelled", total)


def inactive_campaigns(engine: Engine) -> set[str]:
    """Campaigns the scheduler must not fire or follow up: cancelled ones."""
    with engine.connect() as conn:
        return set(conn.execute(sa.select(campaigns.c.id).where(campaigns.c.state == "cancelled")).scalars())
