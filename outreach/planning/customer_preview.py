"""One customer's view of a campaign, before anything is sent: for every step (follow-ups included), the
channel they would get and why, or why they would get nothing, and the message rendered for them.

It is the planner's own dry run narrowed to one customer, so it says exactly what a run would do now:
consent, addresses, reply windows, shared addresses, frequency caps and quiet hours all apply. A follow-up
step is judged against the customer's history by the caller (`journeys.previews`, with the scheduler's own
conditions: `FollowupVerdict`): skipped ("replied at ..."), due, not due yet, or waiting for the step
before; unless skipped, its message is shown as it would go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers.profiles import consent_status
from outreach.customers.provisional import is_provisional
from outreach.planning.planner import plan_campaign
from outreach.store.schema import customers


@dataclass(frozen=True)
class FollowupVerdict:
    """What a follow-up step would do for one customer now, judged from their history."""

    # due | skipped | not_yet_due | waiting (the step before has not been sent to them) | already_planned
    state: str
    reason: str | None = None  # skipped: the `unless` condition that holds (replied, ...), or only_if
    detail: str | None = None  # "replied at 2026-11-30 10:05 UTC"
    due_at: datetime | None = None  # not_yet_due: when `after` has passed
    previous_step: str | None = None
    only_if_now: bool | None = None  # the step's only_if, evaluated on the profile as it is now

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["due_at"] = self.due_at.isoformat(timespec="minutes") if self.due_at else None
        return out


@dataclass
class StepPreview:
    step_id: str
    when: str
    channel: str | None = None
    status: str | None = None  # queued (would go) | suppressed | already planned
    reason: str | None = None
    detail: str | None = None
    to: str | None = None
    variant: str | None = None
    subject: str | None = None
    body: str | None = None
    deferred_until: str | None = None
    sms_segments: int | None = None
    # What a user may not expect, such as a service message to someone who said no to marketing.
    note: str | None = None
    # A follow-up step: its verdict for this customer (FollowupVerdict.as_dict()); None for a first step.
    followup: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class CustomerPreview:
    campaign_id: str
    customer_id: str
    in_segment: bool
    steps: list[StepPreview] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "customer": self.customer_id,
            "in_segment": self.in_segment,
            "steps": [s.as_dict() for s in self.steps],
        }


def describe_when(step: Step) -> str:
    if step.after is None:
        return "when the campaign runs"
    text = f"{step.after} after the previous step"
    if step.unless:
        text += f", unless the customer {step.unless.replace('_', ' ')}"
    if step.only_if:
        text += f", only if {step.only_if}"
    return text


def marketing_declined_note(engine: Engine, customer_id: str, channel: str) -> str | None:
    """Why a service message still goes to a customer who said no to marketing on its channel, if they did."""
    with engine.connect() as conn:
        status = consent_status(conn, customer_id, channel, "marketing")
    if status != "revoked":
        return None
    return (
        f"{customer_id} said no to marketing {channel} (consent_{channel}=no), which does not stop a service "
        f"message; consent_{channel}_service=no would"
    )


def preview_customer(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    customer_id: str,
    occurrence: str,
    followups: Mapping[str, FollowupVerdict] | None = None,
    step_id: str | None = None,
) -> CustomerPreview:
    """Every step (or only `step_id`) for one customer; `followups` judges the follow-up steps (by step id)."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(customers.c.id, is_provisional()).where(customers.c.id == customer_id)).first()
    if found is None:
        raise InputError.single("--customer", f"no customer {customer_id!r} (see `outreach customers list`)")
    if found[1]:
        raise InputError.single(
            "--customer", f"{customer_id} is a provisional profile (someone who wrote to us): campaigns never go to it"
        )
    segments: list[sa.ColumnElement[bool]] = []

    def only_them(step: Step, segment: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        segments.append(segment)
        return customers.c.id == customer_id

    rows: dict[str, dict[str, Any]] = {}
    plan = plan_campaign(
        engine,
        loaded,
        settings,
        occurrence,
        dry_run=True,
        steps=loaded.campaign.steps,
        audience=only_them,
        on_row=lambda row: rows.__setitem__(row["step_id"], row),
    )
    with engine.connect() as conn:
        in_segment = bool(
            conn.execute(sa.select(sa.func.count()).where(customers.c.id == customer_id, segments[0])).scalar()
        )
    preview = CustomerPreview(loaded.id, customer_id, in_segment)
    for step, planned in zip(loaded.campaign.steps, plan.steps, strict=True):
        if step_id is not None and step.id != step_id:
            continue
        shown = StepPreview(step.id, describe_when(step))
        verdict = (followups or {}).get(step.id)
        if verdict is not None:
            shown.followup = verdict.as_dict()
        row = rows.get(step.id)
        if verdict is not None and verdict.state == "skipped":
            shown.status, shown.reason, shown.detail = "skipped", verdict.reason, verdict.detail
        elif row is None:
            shown.status = "already planned" if planned.already_planned else None
        else:
            shown.channel = row["channel"]
            shown.status = str(row["status"])
            shown.reason, shown.detail, shown.to = row["reason"], row["detail"], row["address"]
            shown.variant, shown.subject, shown.body = row["variant"], row["subject"], row["body"]
            shown.sms_segments = row["sms_segments"]
            if row["not_before"] is not None:
                shown.deferred_until = row["not_before"].isoformat(timespec="minutes")
            if shown.status == "queued" and loaded.campaign.purpose == "service":
                shown.note = marketing_declined_note(engine, customer_id, shown.channel)
        preview.steps.append(shown)
    return preview
