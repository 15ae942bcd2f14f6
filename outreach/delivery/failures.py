"""Finding what failed: a filter over the ledger's failed, dead and unknown rows, and what operators read
from it (counts by error code, the rows themselves, one row's whole history).

`FailureFilter` is shared by every command that acts on a selection of failures (`failures list`,
`failures replay`), so that what an operator lists is exactly what they replay:

    selection = FailureFilter.from_options(campaign="promo", statuses=["dead"], since="2h")
    with engine.connect() as conn:
        ids = conn.execute(sa.select(deliveries.c.id).where(selection.where())).scalars().all()
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.channels.base import CHANNELS
from outreach.core.durations import parse_duration
from outreach.core.errors import InputError, Problem
from outreach.store.database import utcnow
from outreach.store.ledger import Status
from outreach.store.schema import deliveries, events

# The states an operator looks at (and may replay): never sent, or sent with an outcome nobody knows.
FAILURE_STATES: tuple[str, ...] = (Status.FAILED.value, Status.DEAD.value, Status.UNKNOWN.value)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class FailureFilter:
    """A selection of ledger rows in a failure state; every field left None matches everything.

    `since` / `until` bound the time the row last changed (`updated_at`: when it failed, died or was given
    up as unknown), `since` inclusive, `until` exclusive. `statuses` is a subset of FAILURE_STATES, so a
    filter can never select a row that was sent or delivered.
    """

    campaign: str | None = None
    step: str | None = None
    channel: str | None = None
    statuses: tuple[str, ...] = FAILURE_STATES
    error_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    customer: str | None = None
    occurrence: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        wrong = [s for s in self.statuses if s not in FAILURE_STATES]
        if wrong or not self.statuses:
            raise ValueError(f"statuses must be some of {', '.join(FAILURE_STATES)}, not {self.statuses!r}")

    def where(self) -> sa.ColumnElement[bool]:
        """The filter as one SQL condition on `deliveries`."""
        d = deliveries.c
        conditions: list[sa.ColumnElement[bool]] = [d.status.in_(list(self.statuses))]
        for column, value in (
            (d.campaign_id, self.campaign),
            (d.occurrence, self.occurrence),
            (d.step_id, self.step),
            (d.channel, self.channel),
            (d.error_code, self.error_code),
            (d.customer_id, self.customer),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.since is not None:
            conditions.append(d.updated_at >= self.since)
        if self.until is not None:
            conditions.append(d.updated_at < self.until)
        return sa.and_(*conditions)

    def as_dict(self) -> dict[str, Any]:
        """The filter as JSON-ready values (only what is set), for `--json` output and the audit log."""
        values: dict[str, Any] = {
            "campaign": self.campaign,
            "occurrence": self.occurrence,
            "step": self.step,
            "channel": self.channel,
            "statuses": list(self.statuses),
            "error_code": self.error_code,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "customer": self.customer,
        }
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_options(
        cls,
        *,
        campaign: str | None = None,
        step: str | None = None,
        channel: str | None = None,
        statuses: Sequence[str] = (),
        error_code: str | None = None,
        since: str | None = None,
        until: str | None = None,
        customer: str | None = None,
        occurrence: str | None = None,
        now: datetime | None = None,
    ) -> FailureFilter:
        """A filter from command-line text; every bad value is reported at once as `--option: message`
        (InputError, exit status 2).

        `since` / `until` are ISO dates (`2026-11-30`, UTC midnight; as `until` a date includes that whole
        day), ISO date-times (`2026-11-30T08:00+08:00`; without an offset, UTC) or durations meaning "that
        long ago" (`2h`, `3d`, `1d12h`), counted from the engine's clock (or `now`).
        """
        now = now or utcnow()
        problems: list[Problem] = []
        wrong = sorted({s for s in statuses if s not in FAILURE_STATES})
        if wrong:
            listed = ", ".join(map(repr, wrong))
            problems.append(_problem("--status", f"{listed} is not a failure state: use failed, dead or unknown"))
        if channel is not None and channel not in CHANNELS:
            problems.append(_problem("--channel", f"{channel!r} is not a channel: use {', '.join(CHANNELS)}"))
        since_at = _moment("--since", since, now, problems, end_of_day=False)
        until_at = _moment("--until", until, now, problems, end_of_day=True)
        if since_at is not None and until_at is not None and until_at <= since_at:
            problems.append(_problem("--until", f"{until!r} is not after --since {since!r}"))
        for option, value in (("--campaign", campaign), ("--step", step), ("--customer", customer)):
            if value is not None and not value.strip():
                problems.append(_problem(option, "must not be empty"))
        if problems:
            raise InputError(problems)
        return cls(
            campaign=campaign,
            step=step,
            channel=channel,
            statuses=tuple(s for s in FAILURE_STATES if s in statuses) or FAILURE_STATES,
            error_code=error_code,
            since=since_at,
            until=until_at,
            customer=customer,
            occurrence=occurrence,
        )


def _problem(option: str, message: str) -> Problem:
    return Problem(option, None, None, message)


def _moment(
    option: str, text: str | None, now: datetime, problems: list[Problem], *, end_of_day: bool
) -> datetime | None:
    """A point in time from an option's text (see `FailureFilter.from_options`); None when not given or bad."""
    if text is None:
        return None
    value = text.strip()
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        if value[:1].isdigit() and "-" in value:
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return now - parse_duration(value)
    except (ValueError, OverflowError):
        problems.append(
            _problem(option, f"{text!r} is not an ISO date, date-time or duration like 2h, 3d (meaning that long ago)")
        )
        return None


def failure_count(conn: Connection, selection: FailureFilter) -> int:
    """How many rows the filter selects."""
    query = sa.select(sa.func.count()).select_from(deliveries).where(selection.where())
    return int(conn.execute(query).scalar_one())


def failure_groups(conn: Connection, selection: FailureFilter) -> list[dict[str, Any]]:
    """Counts by error code (None for rows without one, like `unknown`), most frequent first, each with a
    sample error message and the statuses and channels it was seen in."""
    d = deliveries.c
    query = (
        sa.select(d.error_code, d.status, d.channel, sa.func.count(), sa.func.min(d.error_message))
        .where(selection.where())
        .group_by(d.error_code, d.status, d.channel)
    )
    groups: dict[str | None, dict[str, Any]] = {}
    for code, status, channel, count, message in conn.execute(query):
        group = groups.setdefault(
            code, {"error_code": code, "count": 0, "sample_message": None, "statuses": {}, "channels": {}}
        )
        group["count"] += count
        if message is not None and (group["sample_message"] is None or message < group["sample_message"]):
            group["sample_message"] = message
        group["statuses"][status] = group["statuses"].get(status, 0) + count
        group["channels"][channel] = group["channels"].get(channel, 0) + count
    return sorted(groups.values(), key=lambda g: (-g["count"], g["error_code"] is None, g["error_code"] or ""))


ROW_FIELDS = {
    "id": deliveries.c.id,
    "campaign": deliveries.c.campaign_id,
    "occurrence": deliveries.c.occurrence,
    "step": deliveries.c.step_id,
    "customer": deliveries.c.customer_id,
    "channel": deliveries.c.channel,
    "status": deliveries.c.status,
    "attempts": deliveries.c.attempts,
    "error_code": deliveries.c.error_code,
    "error_message": deliveries.c.error_message,
    "updated_at": deliveries.c.updated_at,
}


def failure_rows(conn: Connection, selection: FailureFilter, limit: int | None = 100) -> list[dict[str, Any]]:
    """The selected rows, the latest change first (then the highest id), at most `limit` (None: all)."""
    query = (
        sa.select(*(column.label(name) for name, column in ROW_FIELDS.items()))
        .where(selection.where())
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


SHOW_FIELDS = (
    "id", "idempotency_key", "campaign_id", "occurrence", "step_id", "variant", "customer_id", "channel", "purpose",
    "status", "reason", "detail", "address", "subject", "body", "sms_segments", "provider", "provider_message_id",
    "attempts", "error_code", "error_message", "not_before", "next_attempt_at", "created_at", "enqueued_at",
    "sent_at", "delivered_at", "finished_at", "updated_at",
)  # fmt: skip


def delivery_history(conn: Connection, delivery_id: int) -> dict[str, Any] | None:
    """One ledger row (any status) and every event recorded about it, in the order they happened; None when
    there is no such row. Each attempt shows up as `delivery.sending` (with its number) followed by its
    outcome: `delivery.retry` / `delivery.failed` / `delivery.dead` with the error, or `delivery.sent` with
    the provider's id; delivery reports and bounces follow."""
    row = (
        conn.execute(sa.select(*(deliveries.c[name] for name in SHOW_FIELDS)).where(deliveries.c.id == delivery_id))
        .mappings()
        .first()
    )
    if row is None:
        return None
    history = conn.execute(
        sa.select(events.c.at, events.c.kind, events.c.data)
        .where(events.c.delivery_id == delivery_id)
        .order_by(events.c.at, events.c.id)
    ).mappings()
    return {"delivery": dict(row), "events": [dict(e) for e in history]}
