"""Results of A/B tests from the ledger: per step with variants, each variant's funnel and rates, and each
variant against the first (the control) on reply rate and opt-out rate.

Counts are of ledger rows (one message each): `targeted` are the rows not suppressed, `sent` those that
left (sent, delivered, undelivered), `delivered` those with a delivery receipt (email has none, so its
reach stays low), `replied` / `opted_out` the sent ones with `replied_at` / `opted_out_at`. Rates are of
`sent`.

The difference of two rates (variant minus control) comes with Newcombe's hybrid score interval (method 10
of Newcombe 1998, built from the Wilson interval of each rate): unlike the Wald interval it keeps close to
95% coverage for the small rates opt-outs have, and never leaves [-1, 1]. The verdict is "too small to
call" when either arm has fewer than 30 sent or fewer than 5 successes or 5 failures; otherwise the
variant is better or worse when the interval excludes 0 (a higher reply rate, a lower opt-out rate is
better), else there is no significant difference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlalchemy.engine import Connection

from outreach.store.ledger import Status
from outreach.store.schema import campaign_runs, deliveries

Z95 = 1.959963984540054
MIN_SENT = 30
MIN_EVENTS = 5
TOO_SMALL = "too small to call"
NO_DIFFERENCE = "no significant difference"
SENT_STATES = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)


@dataclass
class Arm:
    """One variant's counts in a step."""

    variant: str
    targeted: int = 0
    suppressed: int = 0
    sent: int = 0
    delivered: int = 0
    replied: int = 0
    opted_out: int = 0

    def rate(self, count: int) -> float | None:
        return count / self.sent if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        rates = {
            "reach_rate": self.rate(self.delivered),
            "reply_rate": self.rate(self.replied),
            "opt_out_rate": self.rate(self.opted_out),
        }
        return {**asdict(self), **{k: None if v is None else round(v, 4) for k, v in rates.items()}}


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p2 - p1, lower, upper): Newcombe's hybrid score interval of the difference of two proportions."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    difference = p2 - p1
    lower = difference - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = difference + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return difference, lower, upper


def compare(control: Arm, arm: Arm, metric: str, higher_is_better: bool) -> dict[str, Any]:
    """The difference of one rate (`replied` or `opted_out` of sent), variant minus control, and a verdict."""
    x1, x2 = getattr(control, metric), getattr(arm, metric)
    if not control.sent or not arm.sent:
        return {"difference": None, "ci95": None, "verdict": TOO_SMALL}
    difference, lower, upper = newcombe(x1, control.sent, x2, arm.sent)
    small = any(n < MIN_SENT or min(x, n - x) < MIN_EVENTS for x, n in ((x1, control.sent), (x2, arm.sent)))
    if small:
        verdict = TOO_SMALL
    elif lower > 0 or upper < 0:
        verdict = f"{arm.variant} {'better' if (lower > 0) == higher_is_better else 'worse'}"
    else:
        verdict = NO_DIFFERENCE
    return {"difference": round(difference, 4), "ci95": [round(lower, 4), round(upper, 4)], "verdict": verdict}


def variant_results(conn: Connection, campaign_id: str, occurrence: str | None = None) -> list[dict[str, Any]]:
    """Per step with variants: its arms in the campaign file's order, and each later arm against the first."""
    d = deliveries.c
    query = (
        sa.select(
            d.step_id,
            d.variant,
            d.status,
            sa.func.count().label("n"),
            sa.func.count(d.replied_at).label("replied"),
            sa.func.count(d.opted_out_at).label("opted_out"),
        )
        .where(d.campaign_id == campaign_id, d.variant.is_not(None))
        .group_by(d.step_id, d.variant, d.status)
    )
    if occurrence is not None:
        query = query.where(d.occurrence == occurrence)
    steps: dict[str, dict[str, Arm]] = defaultdict(dict)
    for step_id, variant, status, n, replied, opted_out in conn.execute(query):
        arm = steps[step_id].setdefault(variant, Arm(variant))
        if status == Status.SUPPRESSED:
            arm.suppressed += n
            continue
        arm.targeted += n
        if status in SENT_STATES:
            arm.sent += n
            arm.replied += replied
            arm.opted_out += opted_out
        if status == Status.DELIVERED:
            arm.delivered += n
    if not steps:
        return []
    order = variant_order(conn, campaign_id, occurrence)
    results = []
    for step_id, arms in sorted(steps.items()):
        known = order.get(step_id, [])
        ranked = sorted(
            arms.values(), key=lambda a: (known.index(a.variant) if a.variant in known else len(known), a.variant)
        )
        control = ranked[0]
        results.append(
            {
                "step": step_id,
                "control": control.variant,
                "arms": [a.as_dict() for a in ranked],
                "comparisons": [
                    {
                        "variant": arm.variant,
                        "control": control.variant,
                        "reply_rate": compare(control, arm, "replied", higher_is_better=True),
                        "opt_out_rate": compare(control, arm, "opted_out", higher_is_better=False),
                    }
                    for arm in ranked[1:]
                ],
            }
        )
    return results


def variant_order(conn: Connection, campaign_id: str, occurrence: str | None = None) -> dict[str, list[str]]:
    """Step id -> its variant ids in the order of the campaign file as last run (of `occurrence` when given),
    read from the source kept with the run; empty when there is none or it cannot be read."""
    r = campaign_runs.c
    query = sa.select(r.source).where(r.campaign_id == campaign_id).order_by(r.started_at.desc()).limit(1)
    if occurrence is not None:
        query = query.where(r.occurrence == occurrence)
    source = conn.execute(query).scalar()
    if not source:
        return {}
    try:
        data = YAML(typ="safe", pure=True).load(source)
    except Exception:  # a source that no longer parses: fall back to the ids' alphabetical order
        return {}
    order: dict[str, list[str]] = {}
    steps = data.get("steps") if isinstance(data, dict) else None
    for step in steps if isinstance(steps, list) else []:
        variants = step.get("variants") if isinstance(step, dict) else None
        if isinstance(variants, list):
            order[str(step.get("id"))] = [str(v.get("id")) for v in variants if isinstance(v, dict)]
    return order
