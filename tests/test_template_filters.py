"""Money, numbers and dates in templates, written as the customer reads them (Babel): the customer's locale by
default, exact decimals, and a clear error (never a traceback) for what cannot be formatted."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from outreach.rendering import TEXT_ENV, RenderError, render
from tests.workdir import Workdir


def _render(source: str, **context: object) -> str:
    return render(TEXT_ENV.from_string(source), context)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("zh-CN", "¥107.50"), ("zh_CN", "¥107.50"), ("en", "CN¥107.50"), (None, "CN¥107.50"), ("de", "107,50\xa0CN¥")],
)
def test_money_follows_the_customers_locale(locale: str | None, expected: str) -> None:
    context = {"locale": locale} if locale else {}
    assert _render("{{ balance | money('CNY') }}", balance=107.5, **context) == expected


def test_amounts_stay_exact() -> None:
    # a CSV's text, a JSON float, a Decimal-looking sum: never binary rounding
    assert _render("{{ b | money('CNY') }}", b="1234567.50", locale="zh_CN") == "¥1,234,567.50"
    assert _render("{{ b | money }}", b=0.1 + 0.2, locale="zh_CN") == "¥0.30"
    assert _render("{{ b | number(2) }}", b=107.5, locale="zh_CN") == "107.50"
    assert _render("{{ b | number }}", b="12345.678", locale="de") == "12.345,678"
    assert _render("{{ b | money('USD', locale='en_US') }}", b=9.99, locale="zh_CN") == "$9.99"


def test_dates_and_times_in_the_customers_locale_and_time_zone() -> None:
    assert _render("{{ d | date }}", d="2026-12-07", locale="zh-CN") == "2026年12月7日"
    assert _render("{{ d | date('long') }}", d=date(2026, 12, 7), locale="en") == "December 7, 2026"
    assert _render("{{ d | date('yyyy-MM-dd') }}", d="2026-12-07", locale="en") == "2026-12-07"
    at = datetime(2026, 12, 7, 2, 0)  # UTC
    assert _render("{{ t | datetime('short') }}", t=at, locale="zh_CN", timezone="Asia/Shanghai") == "2026/12/7 10:00"
    in_utc = _render("{{ t | datetime('short', timezone='UTC') }}", t=at.isoformat(), locale="en")
    assert in_utc == "12/7/26, 2:00\u202fAM"


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("{{ 'abc' | money }}", "money: 'abc' is not a number"),
        ("{{ 1 | money('XYZ') }}", "'XYZ' is not an ISO 4217 currency code"),
        ("{{ 1 | money(locale='qq_ZZ') }}", "'qq_ZZ' is not a locale"),
        ("{{ 'tomorrow' | date }}", "date: 'tomorrow' is not a date"),
        ("{{ 1 | number(99) }}", "digits should be a whole number from 0 to 10"),
        ("{{ '2026-12-07' | datetime(timezone='Mars/Base') }}", "'Mars/Base' is not an IANA time zone"),
    ],
)
def test_what_cannot_be_formatted_is_a_clear_render_error(source: str, complaint: str) -> None:
    with pytest.raises(RenderError, match=complaint):
        _render(source)


def test_a_campaign_shows_the_formatted_amount_in_the_sent_email(desk: Workdir) -> None:
    desk.write(
        "customers.csv",
        """
        id,name,email,locale,timezone,balance,card_due_date
        K001,王芳,wang@example.cn,zh-CN,Asia/Shanghai,107.50,2026-12-07
        K002,Bob,bob@example.com,en,Europe/London,2500,2026-12-07
        K003,Bad,bad@example.com,en,Europe/London,lots,2026-12-07
        """,
    )
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "due.yaml",
        """
        id: card-due
        name: Card payment due
        purpose: service
        steps:
          - id: remind
            channel: email
            content:
              email:
                subject: "{{ balance | money('CNY') }} due {{ card_due_date | date }}"
                text: "Hello {{ name }}"
        """,
    )
    plan = desk.json("campaigns", "plan", "due.yaml")["steps"][0]
    # `lots` makes balance a text column for everyone, so money() refuses that one customer only
    assert plan["suppressed"] == {"render_error": 1}
    desk.ok("campaigns", "run", "due.yaml", "--wait")
    subjects = {m["message"]["To"]: m["message"]["Subject"] for m in desk.outbox("email")}
    assert subjects == {
        "wang@example.cn": "¥107.50 due 2026年12月7日",
        "bob@example.com": "CN¥2,500.00 due Dec 7, 2026",
    }
