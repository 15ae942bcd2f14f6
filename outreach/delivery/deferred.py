"""Deferred rows (quiet hours, holidays) whose moment has come: hand them to the workers again.

Each deferred row is enqueued with a broker delay when it is planned; this is the ledger's own guarantee on
top of that, for a broker that lost the delayed message (Redis wiped, a worker that dropped it because it
came early). Enqueuing a row twice is harmless: only one claim can take it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.planning.queueing import Transport, enqueue_in_batches
from outreach.store.ledger import Status
from outreach.store.schema import deliveries


def release_due(engine: Engine, transport: Transport, now: datetime, batch_size: int) -> int:
    """Enqueue the queued rows whose `not_before` has passed but that were last enqueued before it; returns
    how many."""
    d = deliveries.c
    with engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.select(d.id)
                .where(
                    d.status == Status.QUEUED,
                    d.not_before.is_not(None),
                    d.not_before <= now,
                    sa.or_(d.enqueued_at.is_(None), d.enqueued_at < d.not_before),
                )
                .order_by(d.id)
            ).scalars()
        )
        if ids:
            conn.execute(deliveries.update().where(d.id.in_(ids)).values(enqueued_at=now, updated_at=now))
    if ids:
        enqueue_in_batches(transport, ids, batch_size)
    return len(ids)
