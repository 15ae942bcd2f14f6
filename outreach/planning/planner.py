"""The planner: who gets which message on which channel, written to the ledger before anything is sent.

`plan_campaign` plans one occurrence of a campaign: it compiles the segment (provisional profiles are never
in it), records the run and the campaign's settings for the workers, and plans each step that goes now
with a `StepPlanner` (see `steps`: chunks streamed from SQL, never the whole audience in memory). A real
run records each step's content first (`planned_content`): its rows point at it, and workers render them.
The dry run (`campaigns plan`) does the same work, rendering every message, without writing or enqueueing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.campaigns.declared_attributes import declared_attributes, untyped_names, with_declared
from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers.profiles import attribute_catalog, declare_attributes
from outreach.customers.provisional import is_provisional
from outreach.customers.unsubscribe import signing_key
from outreach.planning.caps import Cap, campaign_cap
from outreach.planning.messages import StepComposer
from outreach.planning.planned_content import record_content, step_payload
from outreach.planning.queueing import Transport
from outreach.planning.quiet_hours import sending_hours
from outreach.planning.steps import CampaignPlan, StepPlanner
from outreach.segments.compiler import compile_segment
from outreach.segments.syntax import SegmentError
from outreach.store.database import insert_ignoring_duplicates, utcnow
from outreach.store.fields import AttributeType
from outreach.store.schema import campaign_runs, campaigns, customers

OCCURRENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._+\-]{0,63}$")
DEFAULT_OCCURRENCE = "manual"


def check_occurrence(label: str) -> str:
    if not OCCURRENCE.match(label):
        raise InputError.single(
            "--occurrence", f"{label!r}: use up to 64 letters, digits and : . _ + -, starting with a letter or digit"
        )
    return label


def check_runnable(loaded: LoadedCampaign) -> None:
    """A campaign that answers customers' messages is not run for a segment (by hand or on a schedule)."""
    if loaded.campaign.trigger is not None:
        raise InputError.single(
            str(loaded.path),
            f"campaign {loaded.id} answers customers' messages (`trigger: inbound`): `outreach serve` runs it "
            "when a message matches, it is not run by hand",
        )


def plan_campaign(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    occurrence: str = DEFAULT_OCCURRENCE,
    *,
    dry_run: bool,
    transport: Transport | None = None,
    steps: Sequence[Step] | None = None,
    progress: Callable[[int, int], None] | None = None,
    today: date | None = None,
    audience: Callable[[Step, sa.ColumnElement[bool]], sa.ColumnElement[bool]] | None = None,
    scheduled_for: datetime | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> CampaignPlan:
    """Plan the steps that go now (those without `after`) for one occurrence of a campaign.

    `steps` and `audience` plan other steps for other customers (follow-ups: those whose previous step is
    due; an inbound trigger: the customer who wrote, if the segment holds them); `audience` is given the step
    and the campaign's compiled segment. `scheduled_for` is the scheduled time of an occurrence the scheduler
    fired. `on_row` is given each ledger row as it is planned (written or, in a dry run, not)."""
    check_occurrence(occurrence)
    campaign = loaded.campaign
    if audience is None:
        check_runnable(loaded)
    today = today or utcnow().date()
    with engine.connect() as conn:
        catalog = campaign_catalog(conn, loaded)
    try:
        segment = campaign_segment(engine, loaded, settings, campaign.segment or "True", catalog, today)
    except SegmentError as exc:
        raise InputError.single(str(loaded.path), f"segment: {exc.message}") from None
    # Provisional profiles (strangers who wrote to us) get replies, never campaigns.
    where = sa.and_(segment, ~is_provisional())
    key = signing_key(engine, settings)
    plan = CampaignPlan(campaign.id, occurrence, dry_run)
    cap = campaign_cap(
        campaign.purpose,
        (campaign.frequency_cap.max, campaign.frequency_cap.per) if campaign.frequency_cap else None,
        settings,
    )
    hours = sending_hours(campaign, settings)
    plan.quiet_hours = hours.describe()
    if not dry_run:
        _start_run(engine, loaded, occurrence, cap, scheduled_for)
        _declare_answer_attributes(engine, steps if steps is not None else loaded.first_steps())
    for step in steps if steps is not None else loaded.first_steps():
        composer = StepComposer(campaign, step, loaded.templates[step.id], settings, key)
        step_where = audience(step, segment) if audience is not None else where
        planner = StepPlanner(engine, loaded, step, occurrence, composer, step_where, dry_run)
        if not dry_run:
            with engine.begin() as conn:
                planner.content_id = record_content(conn, step_payload(loaded, step))
        planner.cap = cap
        planner.hours = hours
        planner.on_row = on_row
        plan.steps.append(planner.run(transport, settings.batch_size, progress, plan.row_ids))
    if not dry_run:
        _finish_run(engine, campaign.id, occurrence)
    return plan


def campaign_catalog(conn: Connection, loaded: LoadedCampaign) -> dict[str, AttributeType]:
    """The attribute types the campaign's segments compile against: the store's, and the attributes its own
    survey steps declare (known before anyone has answered)."""
    catalog = attribute_catalog(conn)
    return with_declared(catalog, loaded.campaign.steps, untyped_names(catalog))


def campaign_segment(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    text: str,
    catalog: dict[str, AttributeType],
    today: date,
) -> sa.ColumnElement[bool]:
    """A segment (or a step's `only_if`) of this campaign as SQL: relative dates (`days_from_now(3)`) are days
    of each customer's own calendar; profiles without a time zone use the campaign's schedule zone, else
    `default_timezone`, as quiet hours do. Raises SegmentError."""
    schedule = loaded.campaign.schedule
    default_zone = schedule.timezone if schedule is not None else settings.default_timezone
    with engine.connect() as conn:
        zones = [z for (z,) in conn.execute(sa.select(customers.c.timezone).distinct()) if z]
    return compile_segment(text, catalog, engine.dialect.name, today, default_zone=default_zone, zones=zones)


def _start_run(
    engine: Engine, loaded: LoadedCampaign, occurrence: str, cap: Cap | None, scheduled_for: datetime | None
) -> None:
    with engine.begin() as conn:
        state = conn.execute(sa.select(campaigns.c.state).where(campaigns.c.id == loaded.id)).scalar()
        if state == "cancelled":
            raise InputError.single(
                str(loaded.path), f"campaign {loaded.id} is cancelled: `outreach campaigns resume {loaded.id}` first"
            )
        record_campaign(conn, loaded, cap)
        record_run(conn, loaded, occurrence, "planning", scheduled_for)


def record_campaign(conn: Connection, loaded: LoadedCampaign, cap: Cap | None) -> None:
    """Keep the campaign's row (what workers read while sending: its throttle, its frequency cap) up to date;
    its operator state (paused, cancelled) is left as it is."""
    c = loaded.campaign
    values = {
        "purpose": c.purpose,
        "throttle": c.throttle,
        "frequency_cap": str(cap) if cap else None,
        "on_unknown": c.unknown_policy,
        "updated_at": utcnow(),
    }
    updated = conn.execute(campaigns.update().where(campaigns.c.id == c.id).values(**values))
    if updated.rowcount == 0:
        conn.execute(insert_ignoring_duplicates(conn, campaigns).values(id=c.id, state="active", **values))


def _declare_answer_attributes(engine: Engine, steps: Sequence[Step]) -> None:
    """Make the attributes that survey answers will fill known to segments (`nps_score <= 6`) from now on."""
    declared = declared_attributes(steps)
    if declared:
        with engine.begin() as conn:
            declare_attributes(conn, declared)


def _finish_run(engine: Engine, campaign_id: str, occurrence: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            campaign_runs.update()
            .where(campaign_runs.c.campaign_id == campaign_id, campaign_runs.c.occurrence == occurrence)
            .values(status="planned", planned_at=utcnow())
        )


def record_run(
    conn: Connection, loaded: LoadedCampaign, occurrence: str, status: str, scheduled_for: datetime | None
) -> None:
    """Write one run (occurrence) of a campaign into `campaign_runs`, unless it is there already."""
    conn.execute(
        insert_ignoring_duplicates(conn, campaign_runs).values(
            campaign_id=loaded.id,
            occurrence=occurrence,
            status=status,
            source=loaded.source,
            source_path=str(loaded.path),
            started_at=utcnow(),
            scheduled_for=scheduled_for,
        )
    )
