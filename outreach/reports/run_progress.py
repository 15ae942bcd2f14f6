"""Where one run of a campaign stands, read from the ledger: what is done, what waits for a retry and when,
what waits for quiet hours, and what did not go (for `campaigns run --wait` and its exit status)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.store.database import utcnow
from outreach.store.ledger import OPEN_STATES, Status
from outreach.store.schema import deliveries

# Rows that ended without reaching the customer and need an operator (failures list / replay).
NOT_SENT = (Status.FAILED, Status.DEAD, Status.UNKNOWN)


@dataclass(frozen=True)
class RunProgress:
    by_status: Counter[str]
    retrying: int  # queued again after a transient error
    next_retry_at: datetime | None
    deferred: int  # waiting for quiet hours or a holiday to end

    @property
    def to_send(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != Status.SUPPRESSED)

    @property
    def open(self) -> int:
        """Rows that may still go now (not those deferred to later)."""
        return sum(self.by_status[s] for s in OPEN_STATES) - self.deferred

    @property
    def finished(self) -> int:
        return self.to_send - self.open - self.deferred

    @property
    def not_sent(self) -> Counter[str]:
        return Counter({s.value: self.by_status[s] for s in NOT_SENT if self.by_status[s]})

    def describe(self, now: datetime) -> str:
        """`12/16 done, retrying 4, next in 8s` for a progress line."""
        parts = [f"{self.finished}/{self.to_send - self.deferred} done"]
        if self.retrying:
            retry = f"retrying {self.retrying}"
            if self.next_retry_at is not None:
                retry += f", next in {max(0, round((self.next_retry_at - now).total_seconds()))}s"
            parts.append(retry)
        if self.deferred:
            parts.append(f"{self.deferred} wait for quiet hours to end")
        return ", ".join(parts)


def run_progress(conn: Connection, campaign_id: str, occurrence: str) -> RunProgress:
    d = deliveries.c
    now = utcnow()
    of_run = sa.and_(d.campaign_id == campaign_id, d.occurrence == occurrence)
    by_status = Counter(
        {
            str(status): int(n)
            for status, n in conn.execute(sa.select(d.status, sa.func.count()).where(of_run).group_by(d.status))
        }
    )
    waiting = sa.and_(of_run, d.status.in_(list(OPEN_STATES)))
    deferred = conn.execute(
        sa.select(sa.func.count()).where(waiting, d.not_before.is_not(None), d.not_before > now)
    ).scalar_one()
    retry_count, next_retry = conn.execute(
        sa.select(sa.func.count(), sa.func.min(d.next_attempt_at)).where(
            waiting, d.status == Status.QUEUED, d.attempts > 0
        )
    ).one()
    return RunProgress(by_status, int(retry_count), next_retry, int(deferred))
