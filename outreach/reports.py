"""Campaign reports from the ledger: the funnel from targeted to delivered, per step and channel."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.db import campaign_runs, deliveries
from outreach.ledger import Status

FUNNEL = (
    "targeted",
    "suppressed",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "dead",
    "unknown",
)


def campaign_report(conn: Connection, campaign_id: str, occurrence: str | None = None) -> dict[str, Any] | None:
    """Counts by status, suppression reason and error code; None when the campaign never ran."""
    d = deliveries.c
    where = [d.campaign_id == campaign_id]
    if occurrence is not None:
        where.append(d.occurrence == occurrence)
    rows = conn.execute(
        sa.select(d.step_id, d.channel, d.status, d.reason, d.error_code, sa.func.count().label("n"))
        .where(*where)
        .group_by(d.step_id, d.channel, d.status, d.reason, d.error_code)
    ).all()
    runs = conn.execute(
        sa.select(campaign_runs.c.occurrence, campaign_runs.c.status, campaign_runs.c.started_at)
        .where(campaign_runs.c.campaign_id == campaign_id)
        .order_by(campaign_runs.c.started_at)
    ).all()
    if not rows and not runs:
        return None
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    steps: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for step_id, channel, status, reason, error_code, n in rows:
        bucket = "queued" if status in (Status.PLANNED, Status.QUEUED) else status
        for counter in (totals, steps[(step_id, channel)]):
            counter["targeted"] += n
            counter[bucket] += n
            if status in (Status.DELIVERED, Status.UNDELIVERED):
                counter["sent"] += n  # delivered and undelivered messages were sent first
        if reason:
            reasons[reason] += n
        if error_code and status in (Status.FAILED, Status.DEAD, Status.UNDELIVERED):
            errors[error_code] += n
    return {
        "campaign": campaign_id,
        "occurrence": occurrence,
        "runs": [{"occurrence": o, "status": s, "started_at": t} for o, s, t in runs],
        "funnel": {k: totals.get(k, 0) for k in FUNNEL},
        "suppressed_by_reason": dict(reasons.most_common()),
        "errors_by_code": dict(errors.most_common(10)),
        "by_step": [
            {"step": step, "channel": channel, **{k: c.get(k, 0) for k in FUNNEL}}
            for (step, channel), c in sorted(steps.items())
        ],
    }
