"""Quiet hours and holidays: when a message may not go out, and the first moment after that when it may.

Quiet hours are wall-clock times in the customer's own time zone (the campaign's for customers without one);
a window may cross midnight (21:00-08:00). A campaign's own `quiet_hours` win; otherwise marketing and surveys
keep the `quiet_hours` setting (21:00-08:00 unless configured) and the other service campaigns
`quiet_hours_service` (none unless configured). Marketing is also held on the holidays of the customer's
country (`config/holidays.yaml`). A message planned inside either is deferred to the first allowed moment —
never dropped: its ledger row gets `not_before`, and a worker will not claim it earlier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from outreach.campaigns.model import Campaign
from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.core.time_zones import zone_or_none
from outreach.core.yaml_source import load_yaml

# A holiday-free, quiet-hours-free moment is always found within this many days (else the input is absurd:
# every day a holiday).
_MAX_DAYS = 400


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietWindow:
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def covers(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


# What held a message back: the quiet window, or a holiday of the customer's country.
QUIET_HOURS, HOLIDAY = "quiet_hours", "holiday"


@dataclass(frozen=True)
class SendingHours:
    """The rules one step's messages follow: a quiet window, and the holidays of each country. `set_by` says
    where the window came from (for `plan` and `run` to say)."""

    window: QuietWindow | None
    default_zone: ZoneInfo
    holidays: Mapping[str, frozenset[date]] = field(default_factory=dict)
    set_by: str = ""

    def describe(self) -> str:
        """`21:00-08:00 (the quiet_hours setting)`, or `none (...)`."""
        shown = f"{self.window.start:%H:%M}-{self.window.end:%H:%M}" if self.window else "none"
        return f"{shown} ({self.set_by})" if self.set_by else shown

    def hold(self, at: datetime, zone: str | None, country: str | None) -> tuple[datetime, str] | None:
        """None when a message may go at `at`; else the first allowed moment after it and what holds it now
        (QUIET_HOURS or HOLIDAY)."""
        until = self.not_before(at, zone, country)
        if until is None:
            return None
        local = at.astimezone(zone_or_none(zone) or self.default_zone)
        on_holiday = local.date() in self.holidays.get((country or "").upper(), frozenset())
        return until, HOLIDAY if on_holiday else QUIET_HOURS

    def not_before(self, at: datetime, zone: str | None, country: str | None) -> datetime | None:
        """None when a message may go at `at`; else the first allowed moment after it (aware, UTC)."""
        tz = zone_or_none(zone) or self.default_zone
        days = self.holidays.get((country or "").upper(), frozenset())
        if self.window is None and not days:
            return None
        local = at.astimezone(tz)
        candidate = local
        for _ in range(_MAX_DAYS * 2):
            if candidate.date() in days:
                candidate = _at(candidate.date() + timedelta(days=1), time(0, 0), tz)
                continue
            if self.window is not None and self.window.covers(candidate.timetz().replace(tzinfo=None)):
                end_day = candidate.date()
                if self.window.start > self.window.end and candidate.time() >= self.window.start:
                    end_day += timedelta(days=1)
                candidate = _at(end_day, self.window.end, tz)
                continue
            break
        else:
            raise ValueError("no moment outside quiet hours and holidays within a year")
        return None if candidate == local else candidate.astimezone(ZoneInfo("UTC"))


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    """`day` at wall-clock `moment` in `tz`; a time skipped by a DST change becomes the first one after it."""
    naive = datetime.combine(day, moment)
    aware = naive.replace(tzinfo=tz)
    if aware.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != naive:  # in a DST gap
        aware = (aware.astimezone(ZoneInfo("UTC"))).astimezone(tz)
    return aware


def load_holidays(path: Path) -> dict[str, frozenset[date]]:
    """`{COUNTRY: [dates]}` from a YAML file; a missing file means no holidays. Bad input: PATH:LINE:COL."""
    if not path.exists():
        return {}
    try:
        doc = load_yaml(path)
    except ValueError:  # the YAML loader itself refuses a date-like value that is no date (2026-13-01)
        raise InputError(_bad_dates(path)) from None
    data = doc.data
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError([doc.problem((), "expected a mapping of country codes to lists of dates")])
    problems = []
    holidays: dict[str, frozenset[date]] = {}
    for country, dates in data.items():
        if not (isinstance(country, str) and len(country) == 2 and country.isalpha()):
            problems.append(doc.problem((country,), f"{country!r} is not a two-letter country code", at_key=True))
            continue
        if not isinstance(dates, list):
            problems.append(doc.problem((country,), "expected a list of dates (YYYY-MM-DD)"))
            continue
        days = set()
        for i, value in enumerate(dates):
            day = value if isinstance(value, date) else _iso_date(value)
            if day is None:
                problems.append(doc.problem((country, i), f"{value!r} is not a date (YYYY-MM-DD)"))
            else:
                days.add(day)
        holidays[country.upper()] = frozenset(days)
    if problems:
        raise InputError(problems)
    return holidays


def _iso_date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def sending_hours(campaign: Campaign, settings: Settings) -> SendingHours:
    """The quiet window and holidays a campaign's messages keep: the campaign's own quiet hours, else the
    setting for its kind (`quiet_hours` for marketing and surveys, `quiet_hours_service` for the rest);
    holidays for marketing only."""
    window = None
    if campaign.quiet_hours == "off":
        set_by = "the campaign says quiet_hours: off"
    elif campaign.quiet_hours is not None:
        window = QuietWindow.parse(campaign.quiet_hours.start, campaign.quiet_hours.end)
        set_by = "the campaign's quiet_hours"
    else:
        name = setting_for(campaign)
        window = configured_window(settings, name)
        set_by = f"the {name} setting" + ("" if window else ' is ""')
    zone = zone_or_none(campaign.schedule.timezone if campaign.schedule else None) or zone_or_none(
        settings.default_timezone
    )
    holidays = load_holidays(settings.holidays_file) if campaign.purpose == "marketing" else {}
    return SendingHours(window, zone or ZoneInfo("UTC"), holidays, set_by)


def setting_for(campaign: Campaign) -> str:
    """The setting whose quiet hours a campaign without its own keeps."""
    return "quiet_hours" if campaign.purpose == "marketing" or campaign.is_survey else "quiet_hours_service"


_WINDOW = re.compile(r"^\s*([01][0-9]|2[0-3]):([0-5][0-9])\s*-\s*([01][0-9]|2[0-3]):([0-5][0-9])\s*$")


def configured_window(settings: Settings, name: str) -> QuietWindow | None:
    """The window a quiet-hours setting gives ("21:00-08:00"), None for ""; anything else is refused."""
    text = str(getattr(settings, name))
    if not text.strip():
        return None
    match = _WINDOW.match(text)
    if match is None:
        raise InputError.single(
            name, f'{text!r}: write the quiet window as HH:MM-HH:MM, like 21:00-08:00 (or "" for none)'
        )
    start_h, start_m, end_h, end_m = match.groups()
    return QuietWindow(time(int(start_h), int(start_m)), time(int(end_h), int(end_m)))


def quiet_hours_warning(settings: Settings, campaign: Campaign | None = None) -> str | None:
    """What to say when marketing and surveys keep no quiet hours (the setting is ""): about `campaign` if
    given and it would keep the setting, else in general."""
    if settings.quiet_hours.strip():
        return None
    if campaign is not None and (campaign.quiet_hours is not None or setting_for(campaign) != "quiet_hours"):
        return None
    who = f"campaign {campaign.id}'s messages go" if campaign is not None else "marketing and survey messages go"
    return (
        f'quiet_hours is "" (off): {who} at any hour of the customer\'s day, night included; '
        'set quiet_hours = "21:00-08:00" (the default) to keep them to 08:00-21:00 in each customer\'s time zone'
    )


_DATE_ITEM = re.compile(r"^(\s*-\s*)(\d{4}-\d{1,2}-\d{1,2})\b")


def _bad_dates(path: Path) -> list[Problem]:
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _DATE_ITEM.match(line)
        if match and _iso_date(match.group(2)) is None:
            problems.append(
                Problem(str(path), number, len(match.group(1)) + 1, f"{match.group(2)!r} is not a date (YYYY-MM-DD)")
            )
    return problems or [Problem(str(path), None, None, "not a valid holidays file")]
