"""When a campaign may run and send: cron, `at` and `every` schedules with the bad part pointed at, a schedule
or a trigger but not both, and quiet hours switched off for service campaigns only."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from tests.campaign_files import COMPLAINTS, at, minimal, problems, write
from tests.campaign_files import settings as settings  # a fixture: pytest finds it by this name


@pytest.mark.parametrize(
    ("cron", "bad", "message"),
    [
        ("0 25 * * MON", "25", "hour '25' is not valid: the last value (25) is higher than the maximum value (23)"),
        ("61 10 * * *", "61", "minute '61' is not valid: the last value (61) is higher than the maximum value (59)"),
        ("0 10 * * FUNDAY", "FUNDAY", "day of week 'FUNDAY' is not valid: Invalid weekday name \"FUNDAY\""),
        (
            "0 10 32 * *",
            "32",
            "day of month '32' is not valid: the last value (32) is higher than the maximum value (31)",
        ),
        ("0 10 * 13 *", "13", "month '13' is not valid: the last value (13) is higher than the maximum value (12)"),
        ("*/0 * * * *", "*/0", "minute '*/0' is not valid: Increment must be higher than 0"),
    ],
)
def test_a_bad_cron_field_is_pointed_at(tmp_path: Path, settings: Settings, cron: str, bad: str, message: str) -> None:
    path = write(tmp_path, minimal(schedule=f'{{cron: "{cron}", timezone: Asia/Shanghai}}'))
    line, col = at(path, bad)
    assert problems(path, settings) == [(line, col, f"schedule.cron: {message}")]


def test_cron_needs_five_fields_and_schedules_one_kind_and_a_real_time_zone(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * *\n  timezone: Asia/Shanghai"))
    assert problems(path, settings) == [
        (
            5,
            9,
            "schedule.cron: '0 10 * *' has 4 fields; a cron expression has 5: "
            "minute hour day-of-month month day-of-week, like '0 10 * * MON'",
        )
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 60 24 * * *"))
    assert problems(path, settings) == [
        (5, 9, "schedule.cron: minute '60' is not valid: the last value (60) is higher than the maximum value (59)"),
        (5, 12, "schedule.cron: hour '24' is not valid: the last value (24) is higher than the maximum value (23)"),
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * * *\n  timezone: Mars/Olympus_Mons"))
    assert problems(path, settings) == [
        (6, 13, "schedule.timezone: 'Mars/Olympus_Mons' is not an IANA time zone (like Asia/Shanghai)")
    ]
    path = write(tmp_path, minimal(schedule="\n  cron: 0 10 * * *\n  every: 1d"))
    assert problems(path, settings) == [(5, 3, "schedule: a schedule has exactly one of `cron`, `at` or `every`")]
    path = write(tmp_path, minimal(schedule="{at: next tuesday}"))
    assert problems(path, settings) == [
        (4, 16, "schedule.at: 'next tuesday' is not a date and time like 2026-01-31 10:00")
    ]


def test_a_campaign_has_a_schedule_or_a_trigger_and_the_error_points_at_the_campaign(
    tmp_path: Path, settings: Settings
) -> None:
    path = write(tmp_path, "# both\n" + COMPLAINTS.lstrip("\n") + "schedule: {every: 1d}\n")
    assert problems(path, settings) == [(2, 1, "a campaign runs on a `schedule` or on a `trigger`, not both")]


def test_quiet_hours_off_is_for_service_campaigns_only(tmp_path: Path, settings: Settings) -> None:
    service = write(tmp_path, minimal(quiet_hours="off"), "service.yaml")
    assert load_campaign(service, settings, None).campaign.quiet_hours == "off"
    marketing = write(tmp_path, minimal(quiet_hours="off", purpose="marketing"), "marketing.yaml")
    [(_, _, message)] = problems(marketing, settings)
    assert "marketing always keeps quiet hours" in message
