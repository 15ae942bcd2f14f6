"""Campaign reports from the ledger: the funnel from targeted to delivered, per step and channel, survey
answers, and the results of A/B variants (outreach.reports.variant_report)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.reports.variant_report import variant_results
from outreach.store.database import utcnow
from outreach.store.ledger import Status
from outreach.store.schema import campaign_runs, deliveries, events

FUNNEL = (
    "targeted",
    "suppressed",
    "deferred",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "dead",
    "unknown",
    "replied",
    "opted_out",
)


def campaign_report(conn: Connection, campaign_id: str, occurrence: str | None = None) -> dict[str, Any] | None:
    """Counts by status, suppression reason and error code, for the campaign and for each step and channel
    (`by_step`, each with its own top `errors_by_code`); None when the campaign never ran."""
    d = deliveries.c
    where = [d.campaign_id == campaign_id]
    if occurrence is not None:
        where.append(d.occurrence == occurrence)
    rows = conn.execute(
        sa.select(
            d.step_id,
            d.channel,
            d.status,
            d.reason,
            d.error_code,
            sa.func.count().label("n"),
            sa.func.count(d.replied_at).label("replied"),
            sa.func.count(d.opted_out_at).label("opted_out"),
            # queued rows waiting for quiet hours or a holiday to end
            sa.func.count(sa.case((d.not_before > utcnow(), 1))).label("deferred"),
        )
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
    step_errors: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for step_id, channel, status, reason, error_code, n, replied, opted_out, deferred in rows:
        bucket = "queued" if status in (Status.PLANNED, Status.QUEUED) else status
        if bucket != "queued":
            deferred = 0
        for counter in (totals, steps[(step_id, channel)]):
            counter["targeted"] += n
            counter[bucket] += n - deferred
            counter["deferred"] += deferred
            counter["replied"] += replied
            counter["opted_out"] += opted_out
            if status in (Status.DELIVERED, Status.UNDELIVERED):
                counter["sent"] += n  # delivered and undelivered messages were sent first
        if reason:
            reasons[reason] += n
        if error_code and status in (Status.FAILED, Status.DEAD, Status.UNDELIVERED):
            errors[error_code] += n
            step_errors[(step_id, channel)][error_code] += n
    return {
        "campaign": campaign_id,
        "occurrence": occurrence,
        "runs": [{"occurrence": o, "status": s, "started_at": t} for o, s, t in runs],
        "funnel": {k: totals.get(k, 0) for k in FUNNEL},
        "suppressed_by_reason": dict(reasons.most_common()),
        "errors_by_code": dict(errors.most_common(10)),
        "surveys": survey_results(conn, campaign_id, occurrence),
        "variants": variant_results(conn, campaign_id, occurrence),
        "by_step": [
            {
                "step": step,
                "channel": channel,
                **{k: c.get(k, 0) for k in FUNNEL},
                "errors_by_code": dict(step_errors[(step, channel)].most_common(10)),
            }
            for (step, channel), c in sorted(steps.items())
        ],
    }


def survey_results(conn: Connection, campaign_id: str, occurrence: str | None = None) -> list[dict[str, Any]]:
    """Per step that asked a question: how many answered, and NPS (promoters minus detractors, in points of
    percent), mean CSAT, or the count of each keyword answer. A customer's last answer to a message counts."""
    e, d = events.c, deliveries.c
    query = (
        sa.select(e.delivery_id, e.data)
        .join(deliveries, d.id == e.delivery_id)
        .where(e.kind == "survey.answered", d.campaign_id == campaign_id)
        .order_by(e.id)
    )
    if occurrence is not None:
        query = query.where(d.occurrence == occurrence)
    last: dict[int, dict[str, Any]] = {}
    for delivery_id, data in conn.execute(query):
        if isinstance(data, dict):
            last[delivery_id] = data
    by_step: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for data in last.values():
        by_step[(str(data.get("step")), str(data.get("survey")))].append(data.get("answer"))
    results = []
    for (step, survey), answers in sorted(by_step.items()):
        result: dict[str, Any] = {"step": step, "survey": survey, "answers": len(answers)}
        scores = [a for a in answers if isinstance(a, int | float)]
        if survey == "nps" and scores:
            promoters = sum(1 for a in scores if a >= 9)
            detractors = sum(1 for a in scores if a <= 6)
            result.update(
                nps=round(100 * (promoters - detractors) / len(scores), 1),
                promoters=promoters,
                passives=len(scores) - promoters - detractors,
                detractors=detractors,
            )
        elif survey == "csat" and scores:
            result["mean"] = round(sum(scores) / len(scores), 2)
        else:
            result["counts"] = dict(Counter(str(a) for a in answers).most_common())
        results.append(result)
    return results
