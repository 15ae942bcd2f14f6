"""Money, numbers and dates in templates, written as the customer reads them (Babel): the customer's locale by
default, exact decimals, and a clear error (never a traceback) for what cannot be formatted."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from outreach.campaigns.rendering import (
    HTML_ENV,
    TEXT_ENV,
    MissingData,
    RenderError,
    TemplateText,
    check_template,
    render,
)
from tests.workdir import Workdir


def _render(source: str, **context: object) -> str:
    return render(TEXT_ENV.from_string(source), context)


def _check(source: str) -> list[str]:
    return [p.message for p in check_template(TemplateText(source, "t.j2", lambda line: (line, None)), None)]


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


@pytest.mark.parametrize("balance", [Decimal("107.50"), "107.50", " 107.50 ", 107.5])
def test_a_decimal_is_written_with_the_decimals_it_has(balance: object) -> None:
    assert _render("{{ b | money('CNY') }}", b=balance, locale="zh_CN") == "¥107.50"
    assert _render("{{ b | money('CNY') }}", b=balance, locale="en") == "CN¥107.50"
    if balance != 107.5:  # a float has lost the trailing zero before any filter sees it
        assert _render("{{ b | number }}", b=balance, locale="zh_CN") == "107.50"


def test_sums_and_rounding() -> None:
    # Decimal arithmetic in the template stays exact; money rounds to the fen half up (四舍五入)
    assert _render("{{ (a + b) | money }}", a=Decimal("0.1"), b=Decimal("0.2"), locale="zh_CN") == "¥0.30"
    assert _render("{{ (a + b) | number }}", a=Decimal("0.1"), b=Decimal("0.2"), locale="en") == "0.3"
    assert _render("{{ b | money }}", b="107.505", locale="zh_CN") == "¥107.51"
    assert _render("{{ b | money }}", b="107.504", locale="zh_CN") == "¥107.50"
    assert _render("{{ b | number(1) }}", b="2.25", locale="en") == "2.3"
    assert _render("{{ b | money }}", b="-1234.5", locale="en") == "-CN¥1,234.50"
    assert _render("{{ b | money('JPY') }}", b="1234.5", locale="ja") == "￥1,235"


@pytest.mark.parametrize(
    ("source", "zh", "en"),
    [
        ("{{ x | number }}", "1,234,567.891", "1,234,567.891"),
        ("{{ x | number(0) }}", "1,234,568", "1,234,568"),
        ("{{ x | number(2) }}", "1,234,567.89", "1,234,567.89"),
        ("{{ x | money('USD') }}", "US$1,234,567.89", "$1,234,567.89"),
        ("{{ x | money('HKD') }}", "HK$1,234,567.89", "HK$1,234,567.89"),
    ],
)
def test_numbers_in_chinese_and_english(source: str, zh: str, en: str) -> None:
    assert _render(source, x="1234567.891", locale="zh_CN") == zh
    assert _render(source, x="1234567.891", locale="en") == en


def test_a_grouped_csv_value_is_read_but_a_decimal_comma_is_refused() -> None:
    assert _render("{{ b | money }}", b="1,234,567.50", locale="zh_CN") == "¥1,234,567.50"
    # 107,50 is 107.50 written the German way, or 10750 written carelessly: not guessed at
    with pytest.raises(RenderError, match="money: '107,50' is not a number"):
        _render("{{ b | money }}", b="107,50", locale="zh_CN")


def test_dates_and_times_in_the_customers_locale_and_time_zone() -> None:
    assert _render("{{ d | date }}", d="2026-12-07", locale="zh-CN") == "2026年12月7日"
    assert _render("{{ d | date('long') }}", d=date(2026, 12, 7), locale="en") == "December 7, 2026"
    assert _render("{{ d | date('yyyy-MM-dd') }}", d="2026-12-07", locale="en") == "2026-12-07"
    at = datetime(2026, 12, 7, 2, 0)  # UTC
    assert _render("{{ t | datetime('short') }}", t=at, locale="zh_CN", timezone="Asia/Shanghai") == "2026/12/7 10:00"
    in_utc = _render("{{ t | datetime('short', timezone='UTC') }}", t=at.isoformat(), locale="en")
    assert in_utc == "12/7/26, 2:00\u202fAM"
    # as profiles store them: dates as YYYY-MM-DD, moments as UTC with a Z
    stored = "2026-12-06T18:30:00Z"
    assert _render("{{ t | datetime }}", t=stored, locale="zh_CN", timezone="Asia/Shanghai") == "2026年12月7日 02:30:00"
    assert _render("{{ t | datetime('long') }}", t=stored, locale="en", timezone="Asia/Shanghai") == (
        "December 7, 2026, 2:30:00\u202fAM +0800"
    )
    assert _render("{{ t | datetime('yyyy-MM-dd HH:mm') }}", t=stored, locale="en") == "2026-12-06 18:30"


def test_a_moment_shown_as_a_date_is_the_customers_day() -> None:
    stored = "2026-12-06T18:30:00Z"  # already the 7th in Shanghai
    assert _render("{{ t | date }}", t=stored, locale="zh_CN", timezone="Asia/Shanghai") == "2026年12月7日"
    assert _render("{{ t | date }}", t=stored, locale="en") == "Dec 6, 2026"
    assert _render("{{ t | date(timezone='Asia/Shanghai') }}", t=stored, locale="en") == "Dec 7, 2026"


def test_a_day_given_to_datetime_is_its_midnight_where_the_customer_is() -> None:
    source = "{{ d | datetime('short') }}"
    assert _render(source, d="2026-12-07", locale="en", timezone="America/New_York") == "12/7/26, 12:00\u202fAM"


def test_the_locale_is_the_customers_unless_the_template_says() -> None:
    source = "{{ b | money('CNY') }} {{ d | date('full') }}"
    assert _render(source, b=5, d="2026-12-07", locale="zh_CN") == "¥5.00 2026年12月7日星期一"
    assert _render(source, b=5, d="2026-12-07", locale="en") == "CN¥5.00 Monday, December 7, 2026"
    assert _render(source, b=5, d="2026-12-07") == "CN¥5.00 Monday, December 7, 2026"  # no locale: English
    forced = "{{ b | money('CNY', locale='zh_CN') }} {{ d | date('full', locale='zh_CN') }}"
    assert _render(forced, b=5, d="2026-12-07", locale="en") == "¥5.00 2026年12月7日星期一"
    # the campaign's fallback translation sets the language the filters use (messages.FORMAT_LOCALE)
    assert _render(source, b=5, d="2026-12-07", locale="fr", format_locale="zh") == "¥5.00 2026年12月7日星期一"


def test_html_escapes_what_the_filters_write() -> None:
    # no filter output is trusted markup
    assert render(HTML_ENV.from_string("<b>{{ b | money }}</b>"), {"b": "1", "locale": "en"}) == "<b>CN¥1.00</b>"
    assert render(HTML_ENV.from_string("{{ d | date(\"'<i>'yyyy\") }}"), {"d": "2026-12-07"}) == "&lt;i&gt;2026"


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


@pytest.mark.parametrize(
    ("value", "context", "complaint"),
    [
        ("{{ b | money }}", {"b": "lots"}, "money: 'lots' is not a number"),
        ("{{ b | money }}", {"b": True}, "money: True is not a number"),
        ("{{ b | money }}", {"b": ["1"]}, r"money: \['1'\] is not a number"),
        ("{{ b | money }}", {"b": "NaN"}, "money: 'NaN' is not a number"),
        ("{{ b | money }}", {"b": "1e100000"}, "more digits than an amount in a message can have"),
        ("{{ b | number }}", {"b": "1_000"}, "number: '1_000' is not a number"),
        ("{{ d | date }}", {"d": 20261207}, "date: 20261207 is not a date"),
        ("{{ d | date }}", {"d": "2026-02-30"}, "date: '2026-02-30' is not a date"),
        ("{{ b | money }}", {"b": 1, "locale": "xx_YY"}, "'xx_YY' is not a locale"),
        ("{{ d | datetime }}", {"d": "2026-12-07", "timezone": "Asia"}, "'Asia' is not an IANA time zone"),
        ("{{ d | datetime }}", {"d": "2026-12-07", "timezone": "../etc/passwd"}, "is not an IANA time zone"),
    ],
)
def test_a_customers_value_that_cannot_be_formatted_says_why(
    value: str, context: dict[str, object], complaint: str
) -> None:
    with pytest.raises(RenderError, match=complaint) as raised:
        _render(value, **context)
    assert "Error" not in str(raised.value)  # the filter's words, not a Python exception's name


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("{{ b | money('XYZ') }}", "money: 'XYZ' is not an ISO 4217 currency code"),
        ("{{ b | money(currency='usd', locale='qq_ZZ') }}", "'qq_ZZ' is not a locale Babel knows"),
        ("{{ b | money('CNY', locle='en') }}", "money: got an unexpected keyword argument 'locle'"),
        ("{{ b | money('CNY', 'en', 2) }}", "money: too many positional arguments"),
        ("{{ b | number(2.5) }}", "number: digits should be a whole number from 0 to 10, not 2.5"),
        ("{{ d | date('HH:mm') }}", "date: format 'HH:mm' has time fields (HH, mm): use datetime"),
        ("{{ d | date('soon') }}", "date: format 'soon' has time fields (s): use datetime"),
        ("{{ d | date('MMMMMM d') }}", "CLDR pattern like yyyy-MM-dd (MMMMMM is not a CLDR field)"),
        ("{{ d | datetime('') }}", "datetime: format '' should be short, medium, long, full or a CLDR pattern"),
        ("{{ d | datetime(timezone='Mars/Base') }}", "datetime: 'Mars/Base' is not an IANA time zone"),
        ("{{ 'lots' | money }}", "money: 'lots' is not a number"),
        ("{{ '2026-13-01' | date }}", "date: '2026-13-01' is not a date"),
    ],
)
def test_validation_finds_what_fails_for_every_customer(source: str, complaint: str) -> None:
    (message,) = _check(source)
    assert message.startswith("template error: ") and complaint in message


@pytest.mark.parametrize(
    "source",
    [
        "{{ b | money }} {{ b | money('USD', locale='en_US') }} {{ b | number(2) }} {{ d | date('yyyy年M月d日') }}",
        "{{ d | datetime('short', timezone='Asia/Shanghai') }} {{ d | date(timezone=tz) }} {{ b | money(code) }}",
        "{{ b | default(0) | money }} {{ (b * 2) | money }} {{ 12.5 | money }} {{ '2026-12-07' | date('long') }}",
    ],
)
def test_validation_leaves_what_only_a_customer_can_decide(source: str) -> None:
    assert _check(source) == []


def test_a_missing_value_given_to_a_filter_is_missing_data() -> None:
    # the planner suppresses that customer with missing_data, as for {{ balance }} alone
    for source in ("{{ customer.balance | money }}", "{{ 5 | money(code) }}", "{{ d | date(locale=lang) }}"):
        with pytest.raises(MissingData):
            _render(source, customer={}, d="2026-12-07")


def test_the_filters_are_no_way_round_the_sandbox() -> None:
    assert "templates may not use names starting with _ ('__class__')" in _check("{{ ''.__class__ | money }}")
    with pytest.raises(RenderError):
        _render("{{ ''.__class__ | money }}")
    # a filter's name is no variable, and the filters themselves are not reachable as values
    with pytest.raises(MissingData):
        _render("{{ money }}")
    assert _check("{{ money.__globals__ }}") != []


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
    why = desk.json("campaigns", "plan", "due.yaml", "--customer", "K003")["steps"][0]
    assert (why["reason"], why["detail"]) == ("render_error", "money: 'lots' is not a number")
    desk.ok("campaigns", "run", "due.yaml", "--wait")
    subjects = {m["message"]["To"]: m["message"]["Subject"] for m in desk.outbox("email")}
    assert subjects == {
        "wang@example.cn": "¥107.50 due 2026年12月7日",
        "bob@example.com": "CN¥2,500.00 due Dec 7, 2026",
    }


def test_validate_points_at_a_filter_that_fails_for_everyone(desk: Workdir) -> None:
    desk.write("customers.csv", "id,name,email,balance,card_due_date\nK001,A,a@example.com,107.50,2026-12-07\n")
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
                subject: "Due {{ card_due_date | date('HH:mm') }}"
                text: |
                  Hello {{ name }},
                  you owe {{ balance | money('RMB') }}.
        """,
    )
    done = desk.run("campaigns", "validate", "due.yaml")
    assert done.returncode == 2
    assert done.stdout.splitlines() + done.stderr.splitlines() == [
        "due.yaml:9:42: template error: date: format 'HH:mm' has time fields (HH, mm): use datetime",
        "due.yaml:12:32: template error: money: 'RMB' is not an ISO 4217 currency code (like CNY, USD, HKD)",
    ]
