"""Previews of every step of a campaign, follow-ups included, as a dry run (nothing written): who a follow-up
would go to now, who it would skip and why, who it is not due for yet; and one customer's preview with each
follow-up judged against their real history ("would be skipped: replied at ...").

The judgement is the scheduler's own: `followups.followup_audience` (the step's delay, its `unless`, its
`only_if`), evaluated as SQL. Why a customer is skipped is found by asking it again with one `unless`
condition at a time (and without any), never by deciding it here.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.journeys.followups import followup_audience, followup_indexes, only_if_condition, plan_followup
from outreach.planning.customer_preview import CustomerPreview, FollowupVerdict, preview_customer
from outreach.planning.planner import campaign_catalog, plan_campaign
from outreach.planning.steps import CampaignPlan, StepPlan
from outreach.store.database import reading, utcnow
from outreach.store.schema import campaign_runs, consents, customers, deliveries

# Given each customer a follow-up would not be planned for now: (step id, customer id, verdict).
OnSkipped = Callable[[str, str, FollowupVerdict], None]
CHUNK = 1000


@dataclass
class FollowupSummary:
    """A follow-up step of one occurrence, now: who was sent the step before, and what became of them."""

    previous_step: str
    after: str
    sent_previous: int = 0
    due: int = 0
    already_planned: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    not_yet_due: int = 0
    next_due_at: datetime | None = None
    # Other occurrences of the campaign (the latest first), when this one has sent nothing yet.
    other_occurrences: list[str] = field(default_factory=list)

    def note(self, verdict: FollowupVerdict) -> None:
        if verdict.state == "skipped":
            self.skipped[verdict.reason or "unless"] += 1
        elif verdict.state == "not_yet_due":
            self.not_yet_due += 1
            if verdict.due_at is not None and (self.next_due_at is None or verdict.due_at < self.next_due_at):
                self.next_due_at = verdict.due_at
        elif verdict.state == "already_planned":
            self.already_planned += 1
        elif verdict.state == "due":
            self.due += 1
        if verdict.state != "waiting":
            self.sent_previous += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "previous_step": self.previous_step,
            "after": self.after,
            "sent_previous": self.sent_previous,
            "due": self.due,
            "already_planned": self.already_planned,
            "skipped": dict(self.skipped),
            "not_yet_due": self.not_yet_due,
            "next_due_at": self.next_due_at.isoformat(timespec="minutes") if self.next_due_at else None,
            "other_occurrences": self.other_occurrences,
        }


def check_step(loaded: LoadedCampaign, step_id: str | None) -> None:
    """`--step` must name one of the campaign's steps."""
    ids = [s.id for s in loaded.campaign.steps]
    if step_id is not None and step_id not in ids:
        raise InputError.single("--step", f"campaign {loaded.id} has no step {step_id!r} (its steps: {', '.join(ids)})")


def preview_campaign(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    occurrence: str,
    *,
    step_id: str | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    on_skipped: OnSkipped | None = None,
    now: datetime | None = None,
) -> CampaignPlan:
    """The dry run of every step (or only `step_id`): the steps that go when the campaign runs, for the
    segment; each follow-up for the customers due for it now, with who it skips and who it is not due for."""
    check_step(loaded, step_id)
    now = now or utcnow()
    wanted = {s.id for s in loaded.campaign.steps if step_id is None or s.id == step_id}
    indexes = set(followup_indexes(loaded))
    first = [s for i, s in enumerate(loaded.campaign.steps) if i not in indexes and s.id in wanted]
    plan = plan_campaign(engine, loaded, settings, occurrence, dry_run=True, steps=first, on_row=on_row)
    for index in sorted(indexes):
        step = loaded.campaign.steps[index]
        if step.id not in wanted:
            continue
        summary = FollowupSummary(loaded.campaign.steps[index - 1].id, str(step.after))
        for customer_id, verdict in followup_verdicts(engine, loaded, settings, occurrence, index, now):
            summary.note(verdict)
            if on_skipped is not None and verdict.state in ("skipped", "not_yet_due"):
                on_skipped(step.id, customer_id, verdict)
        if summary.sent_previous == 0:
            summary.other_occurrences = _other_occurrences(engine, loaded, occurrence)
        planned = plan_followup(engine, loaded, settings, occurrence, index, now, dry_run=True, on_row=on_row)
        shown = planned.steps[0] if planned is not None else StepPlan(step.id)
        shown.followup = summary.as_dict()
        plan.steps.append(shown)
    order = {s.id: i for i, s in enumerate(loaded.campaign.steps)}
    plan.steps.sort(key=lambda s: order[s.step_id])
    return plan


def preview_one_customer(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    customer_id: str,
    occurrence: str,
    *,
    step_id: str | None = None,
    now: datetime | None = None,
) -> CustomerPreview:
    """One customer's preview of every step (or `step_id`), each follow-up judged against their history."""
    check_step(loaded, step_id)
    now = now or utcnow()
    verdicts: dict[str, FollowupVerdict] = {}
    for index in followup_indexes(loaded):
        step = loaded.campaign.steps[index]
        if step_id is None or step.id == step_id:
            only = customers.c.id == customer_id
            for _, verdict in followup_verdicts(engine, loaded, settings, occurrence, index, now, only, everyone=True):
                verdicts[step.id] = verdict
    return preview_customer(engine, loaded, settings, customer_id, occurrence, verdicts, step_id)


def followup_verdicts(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    occurrence: str,
    index: int,
    now: datetime,
    among: sa.ColumnElement[bool] | None = None,
    *,
    everyone: bool = False,
) -> Iterator[tuple[str, FollowupVerdict]]:
    """(customer id, verdict) for each customer sent the step before step `index` of `occurrence`, in id
    order; with `everyone`, also those `among` it was not sent to (`waiting`)."""
    steps = loaded.campaign.steps
    step, previous = steps[index], steps[index - 1]
    assert step.delay is not None
    with engine.connect() as conn:
        catalog = campaign_catalog(conn, loaded)
    only_if = only_if_condition(engine, loaded, settings, step, catalog, now.date())
    conditions = _conditions(step)
    # The scheduler's condition, asked in parts: sent at all (as if `after` had passed), due by time (without
    # `unless`), due but for each `unless` condition alone, due by `unless`, due (with `only_if`).
    without_unless = _with_unless(loaded, index, None)
    sent = followup_audience(without_unless, index, occurrence, now + step.delay, None)
    flags: dict[str, sa.ColumnElement[bool]] = {
        "sent": sent,
        "timely": followup_audience(without_unless, index, occurrence, now, None),
        "unless": followup_audience(loaded, index, occurrence, now, None),
        **{
            f"unless_{n}": followup_audience(_with_unless(loaded, index, c), index, occurrence, now, None)
            for n, c in enumerate(conditions)
        },
        "already": _already_planned(loaded, step, occurrence),
    }
    if only_if is not None:
        flags["only_if"] = only_if
    prev = deliveries.alias("prev")
    own = sa.and_(
        prev.c.campaign_id == loaded.id,
        prev.c.occurrence == occurrence,
        prev.c.step_id == previous.id,
        prev.c.customer_id == customers.c.id,
    )
    times = {
        name: sa.select(sa.func.max(prev.c[name])).where(own).scalar_subquery().label(f"t_{name}")
        for name in ("sent_at", "replied_at", "delivered_at", "opted_out_at")
    }
    revoked = (
        sa.select(sa.func.max(consents.c.changed_at))
        .where(
            consents.c.customer_id == customers.c.id,
            consents.c.purpose == loaded.campaign.purpose,
            consents.c.status == "revoked",
        )
        .scalar_subquery()
        .label("t_revoked")
    )
    columns = [customers.c.id, *(sa.case((c, 1), else_=0).label(f"f_{n}") for n, c in flags.items())]
    where = among if everyone and among is not None else sa.and_(sent, among if among is not None else sa.true())
    query = sa.select(*columns, *times.values(), revoked).where(where).order_by(customers.c.id)
    with reading(engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        for row in result.mappings():
            yield str(row["id"]), _verdict(row, step, previous, conditions)


def _verdict(row: Any, step: Step, previous: Step, conditions: list[str]) -> FollowupVerdict:
    assert step.delay is not None
    only_if_now = None if "f_only_if" not in row else bool(row["f_only_if"])
    base = FollowupVerdict("due", previous_step=previous.id, only_if_now=only_if_now)
    if not row["f_sent"]:
        return dataclasses.replace(base, state="waiting")
    if row["f_already"]:
        return dataclasses.replace(base, state="already_planned")
    if not row["f_timely"]:
        sent_at = row["t_sent_at"]
        due_at = _aware(sent_at) + step.delay if sent_at is not None else None
        return dataclasses.replace(base, state="not_yet_due", due_at=due_at)
    if not row["f_unless"]:
        reason = next((c for n, c in enumerate(conditions) if not row[f"f_unless_{n}"]), "unless")
        return dataclasses.replace(base, state="skipped", reason=reason, detail=_why(reason, row))
    if only_if_now is False:
        return dataclasses.replace(base, state="skipped", reason="only_if", detail=f"only_if {step.only_if} is false")
    return base


def _why(condition: str, row: Any) -> str:
    """`replied at 2026-11-30 10:05 UTC`, from the times of the customer's messages of the step before."""
    at = {
        "replied": row["t_replied_at"],
        "delivered": row["t_delivered_at"],
        "opted_out": row["t_opted_out_at"] or row["t_revoked"],
    }.get(condition)
    words = condition.replace("_", " ")
    return f"{words} at {_aware(at):%Y-%m-%d %H:%M} UTC" if at is not None else f"unless: {words}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _conditions(step: Step) -> list[str]:
    """The step's `unless` conditions, one or several."""
    unless: Any = step.unless
    if unless is None:
        return []
    return [str(unless)] if isinstance(unless, str) else [str(c) for c in unless]


def _with_unless(loaded: LoadedCampaign, index: int, condition: str | None) -> LoadedCampaign:
    """The campaign with step `index` excused by `condition` alone (None: by nothing), written as the step
    writes its own `unless` (one value, or a list of them)."""
    step = loaded.campaign.steps[index]
    value: Any = condition
    if condition is not None and not isinstance(step.unless, str):
        value = [condition]
    steps = list(loaded.campaign.steps)
    steps[index] = step.model_copy(update={"unless": value})
    return dataclasses.replace(loaded, campaign=loaded.campaign.model_copy(update={"steps": steps}))


def _already_planned(loaded: LoadedCampaign, step: Step, occurrence: str) -> sa.ColumnElement[bool]:
    d = deliveries.c
    return sa.exists().where(
        d.campaign_id == loaded.id, d.occurrence == occurrence, d.step_id == step.id, d.customer_id == customers.c.id
    )


def _other_occurrences(engine: Engine, loaded: LoadedCampaign, occurrence: str, limit: int = 5) -> list[str]:
    with engine.connect() as conn:
        return [
            str(o)
            for o in conn.execute(
                sa.select(campaign_runs.c.occurrence)
                .where(campaign_runs.c.campaign_id == loaded.id, campaign_runs.c.occurrence != occurrence)
                .order_by(campaign_runs.c.started_at.desc())
                .limit(limit)
            ).scalars()
        ]
