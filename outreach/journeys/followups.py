"""Follow-up steps: `after: 3d` after the previous step was sent to that customer, `unless:` they answered
(or it was delivered, or they opted out), `only_if:` a segment still true when the step is due.

A follow-up belongs to the occurrence of the step before it and is planned through the same ledger and
idempotency keys, so planning it again (every scheduler tick, a restarted scheduler) adds nothing. The whole
audience of a due step is one SQL condition: nothing about a customer is decided in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.inbound.triggers import REPLY, reply_channel
from outreach.planning.planner import campaign_catalog, campaign_segment, plan_campaign
from outreach.planning.queueing import Transport
from outreach.planning.steps import CampaignPlan
from outreach.segments.syntax import SegmentError
from outreach.store.fields import ADDRESS_FIELDS, AttributeType
from outreach.store.schema import campaign_runs, consents, customers, deliveries

# How long after an occurrence started its follow-ups are still looked for, beyond the sum of their delays.
HORIZON_MARGIN = timedelta(days=7)


def followup_audience(
    loaded: LoadedCampaign, index: int, occurrence: str, now: datetime, only_if: sa.ColumnElement[bool] | None
) -> sa.ColumnElement[bool]:
    """Customers due for step `index` of `occurrence`: sent the previous step at least `after` ago, and not
    excused by `unless`."""
    steps = loaded.campaign.steps
    step, previous = steps[index], steps[index - 1]
    assert step.delay is not None
    prev = deliveries.alias("prev")

    def previous_rows(*conditions: sa.ColumnElement[bool]) -> sa.Exists:
        return sa.exists().where(
            prev.c.campaign_id == loaded.id,
            prev.c.occurrence == occurrence,
            prev.c.step_id == previous.id,
            prev.c.customer_id == customers.c.id,
            *conditions,
        )

    where: list[sa.ColumnElement[bool]] = [
        previous_rows(prev.c.sent_at.is_not(None), prev.c.sent_at <= now - step.delay)
    ]
    if step.unless == "replied":
        where.append(~previous_rows(prev.c.replied_at.is_not(None)))
    elif step.unless == "delivered":
        where.append(~previous_rows(prev.c.status == "delivered"))
    elif step.unless == "opted_out":
        where.append(~previous_rows(prev.c.opted_out_at.is_not(None)))
        where.append(
            ~sa.exists().where(
                consents.c.customer_id == customers.c.id,
                consents.c.purpose == loaded.campaign.purpose,
                consents.c.status == "revoked",
            )
        )
    if only_if is not None:
        where.append(only_if)
    return sa.and_(*where)


def plan_due_followups(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    now: datetime,
    transport: Transport | None,
    today: date | None = None,
) -> list[CampaignPlan]:
    """Plan every follow-up step of the campaign that has come due, for each of its recent occurrences."""
    followups = followup_indexes(loaded)
    if not followups:
        return []
    occurrences = _recent_occurrences(engine, loaded, now)
    with engine.connect() as conn:
        catalog = campaign_catalog(conn, loaded)
    plans = []
    for occurrence in occurrences:
        for index in followups:
            plan = plan_followup(
                engine, loaded, settings, occurrence, index, now, dry_run=False, transport=transport, today=today,
                catalog=catalog,
            )  # fmt: skip
            if plan is not None:
                plans.append(plan)
    return plans


def followup_indexes(loaded: LoadedCampaign) -> list[int]:
    """The positions of the steps that follow an earlier one after a delay (`after:`)."""
    return [i for i, step in enumerate(loaded.campaign.steps) if i > 0 and step.delay is not None]


def plan_followup(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    occurrence: str,
    index: int,
    now: datetime,
    *,
    dry_run: bool,
    transport: Transport | None = None,
    today: date | None = None,
    catalog: dict[str, AttributeType] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> CampaignPlan | None:
    """Plan step `index` of `occurrence` for the customers due for it at `now`: what the scheduler does, and
    (`dry_run`) what `campaigns plan` shows of it. None for a reply step when the customer wrote on no channel."""
    step = loaded.campaign.steps[index]
    if step.channel == REPLY:  # a trigger campaign's follow-up answers on the channel the customer used
        channel = reply_channel(engine, occurrence)
        if channel is None:
            return None
        step = step.model_copy(update={"channel": channel})
    if catalog is None:
        with engine.connect() as conn:
            catalog = campaign_catalog(conn, loaded)
    only_if = only_if_condition(engine, loaded, settings, step, catalog, today or now.date())

    def audience(_: Step, __: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        return followup_audience(loaded, index, occurrence, now, only_if)

    return plan_campaign(
        engine, loaded, settings, occurrence, dry_run=dry_run, transport=transport, steps=[step], audience=audience,
        today=today, on_row=on_row,
    )  # fmt: skip


def only_if_condition(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    step: Step,
    catalog: dict[str, AttributeType],
    today: date,
) -> sa.ColumnElement[bool] | None:
    """A step's `only_if` as SQL (None without one); a condition that does not compile is refused."""
    if step.only_if is None:
        return None
    try:
        return campaign_segment(engine, loaded, settings, step.only_if, catalog, today)
    except SegmentError as exc:
        raise InputError.single(str(loaded.path), f"step {step.id} only_if: {exc.message}") from None


def plan_send_time_fallbacks(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    now: datetime,
    transport: Transport | None,
) -> list[CampaignPlan]:
    """A step's message that failed for good because the address is unusable (an invalid number, a hard
    bounce: the profile's address is now flagged) goes again on the step's fallback channel, once."""
    steps = [s for s in loaded.campaign.steps if s.fallback is not None]
    if not steps:
        return []
    occurrences = _recent_occurrences(engine, loaded, now)
    plans = []
    for step in steps:
        assert step.fallback is not None
        invalid_flag = ADDRESS_FIELDS.get(step.channel, (None, None))[1]
        if invalid_flag is None:
            continue
        as_fallback = step.model_copy(update={"channel": step.fallback, "fallback": None})
        for occurrence in occurrences:

            def audience(
                _: Step,
                __: sa.ColumnElement[bool],
                occurrence: str = occurrence,
                step: Step = step,
                flag: str = invalid_flag,
            ) -> sa.ColumnElement[bool]:
                failed = sa.exists().where(
                    deliveries.c.campaign_id == loaded.id,
                    deliveries.c.occurrence == occurrence,
                    deliveries.c.step_id == step.id,
                    deliveries.c.customer_id == customers.c.id,
                    deliveries.c.channel == step.channel,
                    deliveries.c.status == "failed",
                )
                return sa.and_(failed, customers.c[flag].is_not(None))

            plans.append(
                plan_campaign(
                    engine, loaded, settings, occurrence, dry_run=False, transport=transport, steps=[as_fallback],
                    audience=audience,
                )
            )  # fmt: skip
    return plans


def _recent_occurrences(engine: Engine, loaded: LoadedCampaign, now: datetime) -> list[str]:
    steps = loaded.campaign.steps
    horizon = sum((s.delay for s in steps if s.delay), timedelta()) + HORIZON_MARGIN
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(campaign_runs.c.occurrence).where(
                    campaign_runs.c.campaign_id == loaded.id,
                    campaign_runs.c.status == "planned",
                    campaign_runs.c.started_at >= now - horizon,
                )
            ).scalars()
        )
