"""How the library hands ledger row ids to whatever delivers them (Dramatiq in `workers/`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from outreach.store.database import utcnow


class Transport(Protocol):
    """Carries ids of ledger rows to the workers; never the messages themselves."""

    def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None: ...


def enqueue_in_batches(transport: Transport, ids: Sequence[int], batch_size: int, delay_ms: int = 0) -> None:
    for start in range(0, len(ids), batch_size):
        transport.enqueue(ids[start : start + batch_size], delay_ms)


def enqueue_when_due(
    transport: Transport, rows: Sequence[tuple[int, datetime | None]], batch_size: int, now: datetime | None = None
) -> None:
    """Enqueue (id, not_before) pairs: those without a wait at once, the others delayed until their moment
    (grouped by moment, so the rows deferred to the end of one night's quiet hours travel together)."""
    now = now or utcnow()
    by_delay: dict[int, list[int]] = defaultdict(list)
    for delivery_id, not_before in rows:
        delay_ms = max(0, int((not_before - now).total_seconds() * 1000)) if not_before else 0
        by_delay[delay_ms].append(delivery_id)
    for delay_ms, ids in sorted(by_delay.items()):
        enqueue_in_batches(transport, ids, batch_size, delay_ms)
