"""Scheduled times and misfires, computed without waiting: DST in cron schedules, intervals, `at`, grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from outreach.campaigns.model import Schedule
from outreach.planning.occurrences import due, fire_times, occurrence_label

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(times: list[datetime], zone: ZoneInfo) -> list[str]:
    return [t.astimezone(zone).strftime("%m-%d %H:%M %Z") for t in times]


def test_cron_keeps_wall_clock_time_across_both_dst_changes() -> None:
    daily = Schedule(cron="0 10 * * *", timezone="America/New_York")
    spring = list(fire_times(daily, utc(2026, 3, 6), utc(2026, 3, 10)))
    assert local(spring, NEW_YORK) == ["03-06 10:00 EST", "03-07 10:00 EST", "03-08 10:00 EDT", "03-09 10:00 EDT"]
    assert spring[2] - spring[1] == timedelta(hours=23)
    autumn = list(fire_times(daily, utc(2026, 10, 31), utc(2026, 11, 3)))
    assert local(autumn, NEW_YORK) == ["10-31 10:00 EDT", "11-01 10:00 EST", "11-02 10:00 EST"]
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_a_time_that_happens_twice_fires_once_and_a_skipped_time_fires_after_the_gap() -> None:
    repeated = Schedule(cron="30 1 * * *", timezone="America/New_York")  # 01:30 happens twice on 2026-11-01
    times = list(fire_times(repeated, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12)))
    assert local(times, NEW_YORK) == ["11-01 01:30 EDT", "11-02 01:30 EST"]
    skipped = Schedule(cron="30 2 * * *", timezone="America/New_York")  # 02:30 does not exist on 2026-03-08
    times = list(fire_times(skipped, utc(2026, 3, 7, 12), utc(2026, 3, 9, 12)))
    assert local(times, NEW_YORK) == ["03-08 03:30 EDT", "03-09 02:30 EDT"]


def test_weekly_in_shanghai_and_labels_in_utc() -> None:
    weekly = Schedule(cron="0 10 * * MON", timezone="Asia/Shanghai")
    times = list(fire_times(weekly, utc(2026, 11, 1), utc(2026, 11, 30)))
    assert [occurrence_label(t) for t in times] == [
        "2026-11-02T02:00Z",
        "2026-11-09T02:00Z",
        "2026-11-16T02:00Z",
        "2026-11-23T02:00Z",
    ]


def test_intervals_are_aligned_the_same_for_every_process() -> None:
    hourly = Schedule(every="1h")
    first = list(fire_times(hourly, utc(2026, 11, 1, 0, 30), utc(2026, 11, 1, 3)))
    again = list(fire_times(hourly, utc(2026, 11, 1, 0, 59), utc(2026, 11, 1, 3)))
    assert first == again == [utc(2026, 11, 1, 1), utc(2026, 11, 1, 2), utc(2026, 11, 1, 3)]


def test_at_fires_once_in_its_zone() -> None:
    once = Schedule(at=datetime(2026, 12, 1, 9, 0), timezone="Asia/Shanghai")
    assert list(fire_times(once, utc(2026, 11, 1), utc(2026, 12, 31))) == [utc(2026, 12, 1, 1)]
    assert list(fire_times(once, utc(2026, 12, 1, 1), utc(2026, 12, 31))) == []  # already dealt with


def test_misfires_coalesce_to_the_latest_within_grace() -> None:
    weekly = Schedule(cron="0 10 * * MON", timezone="Asia/Shanghai")
    grace = timedelta(hours=1)
    # down for three weeks, back 30 minutes after the latest firing: that one runs, the others are missed
    decision = due(weekly, utc(2026, 11, 1), utc(2026, 11, 23, 2, 30), grace)
    assert decision.run == utc(2026, 11, 23, 2)
    assert decision.missed == [utc(2026, 11, 2, 2), utc(2026, 11, 9, 2), utc(2026, 11, 16, 2)]
    assert decision.watermark == utc(2026, 11, 23, 2)
    # back three hours late: nothing runs late, everything is recorded as missed
    late = due(weekly, utc(2026, 11, 20), utc(2026, 11, 23, 5), grace)
    assert late.run is None and late.missed == [utc(2026, 11, 23, 2)] and late.watermark == utc(2026, 11, 23, 2)
    # nothing due
    idle = due(weekly, utc(2026, 11, 23, 2), utc(2026, 11, 25), grace)
    assert idle.run is None and idle.missed == [] and idle.watermark == utc(2026, 11, 23, 2)
