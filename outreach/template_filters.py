"""Locale-aware filters for templates (Babel, CLDR data): amounts, numbers, dates and times written the way
the customer reads them.

    {{ balance | money('CNY') }}        zh_CN: ¥107.50       en: CN¥107.50
    {{ points | number }}               zh_CN: 12,345        de: 12.345
    {{ card_due_date | date }}          zh_CN: 2026年12月7日   en: Dec 7, 2026
    {{ sent_at | datetime('short') }}   in the customer's time zone

The locale is the customer's (`locale` on the profile, zh-CN or zh_CN), else English (or, when the
customer was given a campaign's fallback translation, that translation's language); any filter takes
`locale='en_US'` to override it. Amounts are Decimal all the way (a CSV's 107.50 stays 107.50, never a
float rounded). A value a filter cannot format, an unknown currency or locale raises ValueError, which the
renderer reports for that customer (`render_error`), never a traceback.
"""

from __future__ import annotations

from copy import copy
from datetime import date as Date
from datetime import datetime as DateTime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, list_currencies, parse_pattern
from jinja2 import pass_context
from jinja2.runtime import Context

FALLBACK_LOCALE = "en"
# Set by the composer when a customer gets a translation not in their own language (the campaign's fallback):
# the filters then format in the translation's language, so one message does not mix two.
FORMAT_LOCALE = "format_locale"
DATE_FORMATS = ("short", "medium", "long", "full")
_CURRENCIES = frozenset(list_currencies())


def _locale(context: Context, override: str | None) -> Locale:
    tag = override or context.get(FORMAT_LOCALE) or context.get("locale") or FALLBACK_LOCALE
    try:
        return Locale.parse(str(tag).replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"{tag!r} is not a locale Babel knows (like zh_CN or en)") from None


def _decimal(value: Any, filter_name: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{filter_name}: {value!r} is not a number")
    try:
        # str() first: a float from JSON (107.5) becomes the decimal it was written as, not its binary value
        amount = Decimal(value.strip().replace(",", "") if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{filter_name}: {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{filter_name}: {value!r} is not a number")
    return amount


def _format(kind: str, value: str) -> str:
    if value not in DATE_FORMATS and not any(c.isalpha() for c in value):
        raise ValueError(f"{kind} format {value!r}: use short, medium, long, full or a CLDR pattern like yyyy-MM-dd")
    return value


@pass_context
def money(context: Context, value: Any, currency: str = "CNY", locale: str | None = None) -> str:
    code = str(currency).upper()
    if code not in _CURRENCIES:
        raise ValueError(f"money: {currency!r} is not an ISO 4217 currency code (like CNY, USD, HKD)")
    return str(format_currency(_decimal(value, "money"), code, locale=_locale(context, locale)))


@pass_context
def number(context: Context, value: Any, digits: int | None = None, locale: str | None = None) -> str:
    amount = _decimal(value, "number")
    where = _locale(context, locale)
    if digits is None:
        return str(format_decimal(amount, locale=where, decimal_quantization=False))
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
        raise ValueError(f"number: digits should be a whole number from 0 to 10, not {digits!r}")
    pattern = copy(parse_pattern(where.decimal_formats[None]))
    pattern.frac_prec = (digits, digits)  # exactly `digits` decimals, rounded half-even
    return str(pattern.apply(amount, where))


def _as_datetime(value: Any, filter_name: str) -> Date:
    if isinstance(value, Date):
        return value
    if isinstance(value, str):
        try:
            return DateTime.fromisoformat(value.strip()) if "T" in value or ":" in value else Date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{filter_name}: {value!r} is not a date (like 2026-12-07)")


@pass_context
def date(context: Context, value: Any, format: str = "medium", locale: str | None = None) -> str:
    when = _as_datetime(value, "date")
    return str(format_date(when, _format("date", format), locale=_locale(context, locale)))


@pass_context
def datetime(
    context: Context, value: Any, format: str = "medium", locale: str | None = None, timezone: str | None = None
) -> str:
    when = _as_datetime(value, "datetime")
    if not isinstance(when, DateTime):
        when = DateTime(when.year, when.month, when.day)
    zone_name = timezone or context.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"datetime: {zone_name!r} is not an IANA time zone (like Asia/Shanghai)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    return str(format_datetime(when, _format("datetime", format), tzinfo=zone, locale=_locale(context, locale)))


FILTERS = {"money": money, "number": number, "date": date, "datetime": datetime}
