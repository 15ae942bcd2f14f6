"""Relative dates in segments, the same on SQLite and PostgreSQL: `days_from_now(N)`, `today()` and
`month_day(...)` are days of each customer's own calendar (their profile's time zone), with the 29 February
rule; and a marketer's "due in 3 days" reminder plans exactly those customers through the real CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from outreach.segments.compiler import compile_segment
from outreach.store.database import open_store
from outreach.store.fields import AttributeType
from outreach.store.schema import attribute_types, customers
from tests.workdir import Workdir

CATALOG: dict[str, AttributeType] = {"card_due_date": "date", "birthday": "date", "paid_at": "date"}
# 20:00 UTC on 4 December: already 5 December in Shanghai (UTC+8), still 4 December in New York (UTC-5)
NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def _load(url: str, people: list[dict[str, Any]]) -> sa.Engine:
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(customers.delete())
        conn.execute(attribute_types.delete())
        conn.execute(attribute_types.insert(), [{"name": k, "type": v} for k, v in CATALOG.items()])
        conn.execute(
            customers.insert(),
            [
                {"id": p["id"], "timezone": p.get("tz"), "attributes": p["attributes"], "created_at": NOW,
                 "updated_at": NOW}
                for p in people
            ],
        )  # fmt: skip
    return engine


def _ids(engine: sa.Engine, text: str, now: datetime = NOW, default_zone: str = "UTC") -> set[str]:
    clause = compile_segment(
        text, CATALOG, engine.dialect.name, now.date(), now=now, default_zone=default_zone,
        zones=["Asia/Shanghai", "America/New_York"],
    )  # fmt: skip
    with engine.connect() as conn:
        return set(conn.execute(sa.select(customers.c.id).where(clause)).scalars())


PEOPLE = [
    {"id": "SH-8", "tz": "Asia/Shanghai", "attributes": {"card_due_date": "2026-12-08"}},
    {"id": "SH-7", "tz": "Asia/Shanghai", "attributes": {"card_due_date": "2026-12-07"}},
    {"id": "NY-7", "tz": "America/New_York", "attributes": {"card_due_date": "2026-12-07"}},
    {"id": "NY-8", "tz": "America/New_York", "attributes": {"card_due_date": "2026-12-08"}},
    {"id": "UTC-7", "tz": None, "attributes": {"card_due_date": "2026-12-07"}},
    {"id": "none", "tz": "Asia/Shanghai", "attributes": {}},
]


def test_due_in_three_days_is_counted_from_each_customers_today(store_url: str) -> None:
    engine = _load(store_url, PEOPLE)
    assert _ids(engine, "card_due_date == days_from_now(3)") == {"SH-8", "NY-7", "UTC-7"}
    # a profile without a time zone takes the campaign's zone
    assert "UTC-7" not in _ids(engine, "card_due_date == days_from_now(3)", default_zone="Asia/Shanghai")
    # within the next week, from today on
    window = "card_due_date >= today() and card_due_date <= days_from_now(7)"
    assert _ids(engine, window) == {"SH-8", "SH-7", "NY-7", "NY-8", "UTC-7"}
    assert _ids(engine, "card_due_date < days_from_now(3)") == {"SH-7"}
    assert _ids(engine, "card_due_date == days_ago(0)") == _ids(engine, "card_due_date == today()") == set()


@pytest.mark.parametrize(
    ("now", "greeted"),
    [
        (datetime(2027, 2, 28, 12, tzinfo=UTC), {"born-0229", "born-0228"}),  # not a leap year: 28 Feb for both
        (datetime(2028, 2, 28, 12, tzinfo=UTC), {"born-0228"}),  # a leap year: 29 Feb has its own day
        (datetime(2028, 2, 29, 12, tzinfo=UTC), {"born-0229"}),
        (datetime(2027, 3, 1, 12, tzinfo=UTC), {"born-0301"}),
    ],
)
def test_birthdays_with_the_29_february_rule(store_url: str, now: datetime, greeted: set[str]) -> None:
    people = [
        {"id": "born-0229", "tz": "Asia/Shanghai", "attributes": {"birthday": "1992-02-29"}},
        {"id": "born-0228", "tz": "Asia/Shanghai", "attributes": {"birthday": "1990-02-28"}},
        {"id": "born-0301", "tz": "Asia/Shanghai", "attributes": {"birthday": "1985-03-01"}},
    ]
    engine = _load(store_url, people)
    assert _ids(engine, "month_day(birthday) == month_day(today())", now=now) == greeted


def test_a_customer_in_another_zone_has_another_birthday_today(store_url: str) -> None:
    people = [
        {"id": "SH", "tz": "Asia/Shanghai", "attributes": {"birthday": "1990-12-05"}},
        {"id": "NY", "tz": "America/New_York", "attributes": {"birthday": "1990-12-05"}},
    ]
    engine = _load(store_url, people)
    assert _ids(engine, "month_day(birthday) == month_day(today())") == {"SH"}
    assert _ids(engine, "month_day(birthday) == month_day(days_from_now(1))") == {"NY"}


def test_a_due_in_three_days_reminder_plans_exactly_those_customers(desk: Workdir) -> None:
    today = datetime.now(UTC).date()  # the desk runs on the real clock; everyone here lives in UTC
    rows = [f"K{n},Name{n},k{n}@example.com,UTC,{today + timedelta(days=n)}" for n in range(6)]
    desk.write("customers.csv", "id,name,email,timezone,card_due_date\n" + "\n".join(rows) + "\n")
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "due.yaml",
        """
        id: card-due-3d
        name: Card payment due in 3 days
        purpose: service
        segment: "card_due_date == days_from_now(3)"
        steps:
          - id: remind
            channel: email
            content:
              email: {subject: "Due on {{ card_due_date | date }}", text: "Hello {{ name }}"}
        """,
    )
    desk.ok("campaigns", "plan", "due.yaml", "--recipients", "who.csv")
    lines = (desk.path / "who.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert [line.split(",")[1] for line in lines] == ["K3"]
    due = today + timedelta(days=3)
    assert desk.json("campaigns", "plan", "due.yaml")["steps"][0]["samples"][0]["subject"] == (
        f"Due on {due:%b} {due.day}, {due.year}"
    )


@pytest.mark.parametrize(
    ("segment", "hint"),
    [
        ("card_due_date == days_ago(-3)", "for a date in the future use days_from_now(3)"),
        ("city = 1", "use == to compare"),
        ("tier == gold", "to compare with the text gold write 'gold'"),
    ],
)
def test_common_mistakes_get_a_hint(desk: Workdir, segment: str, hint: str) -> None:
    desk.write("customers.csv", f"id,name,tier,city,card_due_date\nK1,A,silver,Shanghai,{date(2026, 12, 7)}\n")
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "c.yaml",
        f"""
        id: c
        name: C
        purpose: service
        segment: "{segment}"
        steps:
          - id: s
            channel: email
            content:
              email: {{subject: "x", text: "y"}}
        """,
    )
    done = desk.run("campaigns", "validate", "c.yaml")
    assert done.returncode == 2 and done.stderr.startswith("c.yaml:4:")
    assert hint in done.stderr
