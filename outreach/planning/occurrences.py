"""When a scheduled campaign fires: its schedule as an APScheduler trigger, and the occurrences due by a
given moment.

An occurrence is keyed by the time it was scheduled for (`2026-11-30T02:00Z`, in UTC), never by when it
actually ran: a firing repeated after a crash, on another host or after a restart plans the same occurrence
again, which the ledger's idempotency keys make a no-op.

Misfires (the scheduler was down when an occurrence was due) are coalesced: of the occurrences missed, only
the latest runs, and only if it is no older than the grace (`schedule_grace`); older ones are recorded as
missed and skipped (a Monday 10:00 promotion does not go out on Tuesday at 03:00 after an outage).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from outreach.campaigns.model import Schedule
from outreach.core.durations import parse_duration

# Intervals count from this moment, so that every scheduler process and every restart agrees on them.
INTERVAL_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday
_MAX_SCAN = 100_000
_TICK = timedelta(microseconds=1)


def trigger_for(schedule: Schedule) -> Any:
    """The APScheduler trigger of a schedule (cron in its time zone on wall-clock time, at, or every)."""
    zone = ZoneInfo(schedule.timezone)
    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=zone)
    if schedule.at is not None:
        at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=zone)
        return DateTrigger(run_date=at, timezone=zone)
    assert schedule.every is not None
    return IntervalTrigger(seconds=int(parse_duration(schedule.every).total_seconds()), start_date=INTERVAL_EPOCH)


def spec(schedule: Schedule) -> str:
    """The schedule as text: a changed schedule starts afresh (it does not back-fill the new times)."""
    return schedule.model_dump_json(exclude_none=True)


def fire_times(schedule: Schedule, after: datetime, until: datetime) -> Iterator[datetime]:
    """Scheduled times t with after < t <= until, in UTC, each once.

    On the night clocks go back a wall-clock time happens twice; a cron schedule fires at the first of the
    two only. On the night they go forward a skipped time fires at the first moment after the gap (as
    APScheduler computes it).
    """
    trigger = trigger_for(schedule)
    zone = ZoneInfo(schedule.timezone)
    if isinstance(trigger, DateTrigger):
        run = trigger.run_date.astimezone(UTC)
        if after < run <= until:
            yield run
        return
    seen_local: set[datetime] = set()
    moment = after + _TICK
    for _ in range(_MAX_SCAN):
        next_time = trigger.get_next_fire_time(None, moment.astimezone(zone))
        if next_time is None:
            return
        next_utc = next_time.astimezone(UTC)
        if next_utc > until:
            return
        local = next_time.astimezone(zone).replace(tzinfo=None)
        if schedule.cron is None or local not in seen_local:
            seen_local.add(local)
            yield next_utc
        moment = next_utc + _TICK


@dataclass(frozen=True)
class Due:
    """What to do about a schedule now: the occurrence to plan (if any) and the ones missed for good."""

    run: datetime | None
    missed: list[datetime]
    watermark: datetime  # the latest scheduled time dealt with


def due(schedule: Schedule, watermark: datetime, now: datetime, grace: timedelta) -> Due:
    times = list(fire_times(schedule, watermark, now))
    if not times:
        return Due(None, [], watermark)
    latest = times[-1]
    if now - latest <= grace:
        return Due(latest, times[:-1], latest)
    return Due(None, times, latest)


def occurrence_label(scheduled: datetime) -> str:
    """`2026-11-30T02:00Z`: the scheduled time in UTC, to the second when it has seconds."""
    moment = scheduled.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S" if moment.second else "%Y-%m-%dT%H:%M")
    return text + "Z"
