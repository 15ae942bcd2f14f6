"""Locale-aware filters for templates (Babel, CLDR data): amounts, numbers, dates and times written the way
the customer reads them.

    {{ balance | money('CNY') }}        zh_CN: ¥107.50       en: CN¥107.50
    {{ points | number }}               zh_CN: 12,345        de: 12.345
    {{ card_due_date | date }}          zh_CN: 2026年12月7日   en: Dec 7, 2026
    {{ sent_at | datetime('short') }}   in the customer's time zone

The locale is the customer's (`locale` on the profile, zh-CN or zh_CN), else English (or, when the
customer was given a campaign's fallback translation, that translation's language); any filter takes
`locale='en_US'` to override it. Amounts are Decimal all the way (a CSV's 107.50 stays 107.50, never a
float rounded); money is rounded to the currency's minor unit half up (四舍五入).

A value a filter cannot format, an unknown currency, locale, time zone or format raises FilterError (a
ValueError), which the renderer reports for that customer (`render_error`) in the filter's own words, never a
traceback. `check_filter` finds the same mistakes in a template's constant arguments when a campaign is
validated, before any customer is involved.

The filters only read the context's `locale`, `timezone` and `format_locale` and return plain text (escaped
in HTML like any value): they give a template nothing it could not reach without them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from datetime import UTC
from datetime import date as Date
from datetime import datetime as DateTime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import PATTERN_CHARS, format_date, format_datetime, tokenize_pattern
from babel.numbers import format_currency, list_currencies, parse_pattern
from jinja2 import Undefined, pass_context

FALLBACK_LOCALE = "en"
FALLBACK_TIMEZONE = "UTC"
# Set by the composer when a customer gets a translation not in their own language (the campaign's fallback):
# the filters then format in the translation's language, so one message does not mix two.
FORMAT_LOCALE = "format_locale"
DATE_FORMATS = ("short", "medium", "long", "full")
_CURRENCIES = frozenset(list_currencies())
# Pattern letters of a date alone (era, year, quarter, month, week, day, weekday); the rest are times and zones.
_DATE_FIELDS = frozenset("GyYuUQqMLlwWdDFgEec")
# 10^24 is past any balance; a longer number (or more decimals) is a data mistake, and Decimal's arithmetic
# is kept well inside its precision.
_MAX_DIGITS = 24
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


class FilterError(ValueError):
    """A filter cannot format its value or was given an argument it cannot use; the message says which."""


class _Names(Protocol):
    """What a filter reads of the template's context (jinja2's Context, or nothing when checking)."""

    def get(self, key: str, default: Any = None) -> Any: ...


# --- the arguments ------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _parse_locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise FilterError(f"{tag!r} is not a locale Babel knows (like zh_CN or en)") from None


def _locale(context: _Names, override: Any) -> Locale:
    tag = override or context.get(FORMAT_LOCALE) or context.get("locale") or FALLBACK_LOCALE
    if not isinstance(tag, str):
        raise FilterError(f"{tag!r} is not a locale (like zh_CN or en)")
    return _parse_locale(tag)


def _currency(currency: Any) -> str:
    code = str(currency).strip().upper() if isinstance(currency, str) else ""
    if code not in _CURRENCIES:
        raise FilterError(f"money: {currency!r} is not an ISO 4217 currency code (like CNY, USD, HKD)")
    return code


def _digits(digits: Any) -> int | None:
    if digits is None:
        return None
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
        raise FilterError(f"number: digits should be a whole number from 0 to 10, not {digits!r}")
    return digits


def _zone(name: Any, filter_name: str) -> ZoneInfo:
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(name)
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory of zones, like "Asia"
        raise FilterError(f"{filter_name}: {name!r} is not an IANA time zone (like Asia/Shanghai)") from None


def _format(format: Any, filter_name: str) -> str:
    """A named format, or a CLDR pattern whose letters are fields Babel knows (for `date`: fields of a day)."""
    if not isinstance(format, str):
        raise FilterError(f"{filter_name}: format {format!r} should be short, medium, long, full or a pattern")
    if format in DATE_FORMATS:
        return format
    fields: list[tuple[str, int]] = []
    try:
        for kind, token in tokenize_pattern(format):
            if kind == "field" and isinstance(token, tuple):
                fields.append(token)
    except (ValueError, IndexError):
        fields = []
    wrong = [
        char * count
        for char, count in fields
        if char not in PATTERN_CHARS or count not in (PATTERN_CHARS[char] or [count])
    ]
    if not fields or wrong:
        unknown = f" ({', '.join(wrong)} is not a CLDR field)" if wrong else ""
        raise FilterError(
            f"{filter_name}: format {format!r} should be short, medium, long, full or a CLDR pattern like "
            f"yyyy-MM-dd{unknown}"
        )
    if filter_name == "date":
        times = [char * count for char, count in fields if char not in _DATE_FIELDS]
        if times:
            raise FilterError(f"date: format {format!r} has time fields ({', '.join(times)}): use datetime")
    return format


# --- the values ---------------------------------------------------------------------------------------------


def _decimal(value: Any, filter_name: str) -> Decimal:
    """An exact decimal: Decimal as it is, an int, a float as the decimal it prints as (107.5, not its binary
    value), text as written (107.50; 1,234.50 with grouping commas, but never 107,50)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise FilterError(f"{filter_name}: {value!r} is not a number")
    text = value.strip() if isinstance(value, str) else str(value)
    if _GROUPED.match(text):
        text = text.replace(",", "")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(text)
    except (InvalidOperation, ValueError):
        raise FilterError(f"{filter_name}: {value!r} is not a number") from None
    if not amount.is_finite() or "_" in text:  # Decimal("1_000") parses; a CSV value like that is a mistake
        raise FilterError(f"{filter_name}: {value!r} is not a number")
    exponent = amount.as_tuple().exponent
    if (not amount.is_zero() and amount.adjusted() >= _MAX_DIGITS) or (
        isinstance(exponent, int) and exponent < -_MAX_DIGITS
    ):
        raise FilterError(f"{filter_name}: {value!r} has more digits than an amount in a message can have")
    return amount


def _moment(value: Any, filter_name: str) -> Date:
    """A date or a date-time (as given: Python objects, or ISO text like 2026-12-07, 2026-12-07T02:00:00Z)."""
    if isinstance(value, Date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if "T" in text or ":" in text or " " in text:
                return DateTime.fromisoformat(text)
            return Date.fromisoformat(text)
        except ValueError:
            pass
    raise FilterError(f"{filter_name}: {value!r} is not a date (like 2026-12-07)")


def _in_zone(moment: Date, zone: ZoneInfo) -> DateTime:
    """A date-time in `zone`: a moment moved there (one without a zone is UTC, as on profiles), a day at its
    midnight there."""
    if not isinstance(moment, DateTime):
        return DateTime(moment.year, moment.month, moment.day, tzinfo=zone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def _babel(filter_name: str, call: Callable[[], str]) -> str:
    """Run a Babel formatter; what it still refuses becomes a FilterError instead of a traceback."""
    try:
        with localcontext() as ctx:
            ctx.prec, ctx.rounding = 60, ROUND_HALF_UP
            return str(call())
    except FilterError:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise FilterError(f"{filter_name}: cannot format this value ({type(exc).__name__}: {exc})") from None


def _given(*values: Any) -> None:
    """A value the customer lacks (an Undefined, as `customer.balance` without a balance) is missing data, as
    anywhere else in a template: raise jinja2's UndefinedError, not a complaint about its type."""
    for value in values:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()


# --- the filters --------------------------------------------------------------------------------------------


@pass_context
def money(context: _Names, value: Any, currency: str = "CNY", locale: str | None = None) -> str:
    _given(value, currency, locale)
    code = _currency(currency)
    amount = _decimal(value, "money")
    where = _locale(context, locale)
    return _babel("money", lambda: format_currency(amount, code, locale=where))


@pass_context
def number(context: _Names, value: Any, digits: int | None = None, locale: str | None = None) -> str:
    _given(value, digits, locale)
    places = _digits(digits)
    amount = _decimal(value, "number")
    where = _locale(context, locale)
    if places is None:  # the decimals the value has: 107.50 stays 107.50, 12345 stays 12,345
        exponent = amount.as_tuple().exponent
        places = max(0, -exponent) if isinstance(exponent, int) else 0
    pattern = copy(parse_pattern(where.decimal_formats[None]))
    pattern.frac_prec = (places, places)
    fixed = pattern  # for the lambda: mypy does not narrow a copy
    return _babel("number", lambda: fixed.apply(amount, where))


@pass_context
def date(
    context: _Names, value: Any, format: str = "medium", locale: str | None = None, timezone: str | None = None
) -> str:
    _given(value, format, locale, timezone)
    pattern = _format(format, "date")
    moment = _moment(value, "date")
    where = _locale(context, locale)
    if isinstance(moment, DateTime):  # a moment's day is the customer's day, not UTC's
        moment = _in_zone(moment, _zone(timezone or context.get("timezone") or FALLBACK_TIMEZONE, "date")).date()
    day = moment
    return _babel("date", lambda: format_date(day, pattern, locale=where))


@pass_context
def datetime(
    context: _Names, value: Any, format: str = "medium", locale: str | None = None, timezone: str | None = None
) -> str:
    _given(value, format, locale, timezone)
    pattern = _format(format, "datetime")
    moment = _moment(value, "datetime")
    where = _locale(context, locale)
    zone = _zone(timezone or context.get("timezone") or FALLBACK_TIMEZONE, "datetime")
    local = _in_zone(moment, zone)
    return _babel("datetime", lambda: format_datetime(local, pattern, tzinfo=zone, locale=where))


FILTERS: dict[str, Callable[..., str]] = {"money": money, "number": number, "date": date, "datetime": datetime}


# --- checking a template's use of them ----------------------------------------------------------------------


class _NoNames:
    def get(self, key: str, default: Any = None) -> Any:
        return default


_NO_NAMES = _NoNames()
UNKNOWN: Any = object()  # an argument or value only known when rendering (a variable, an expression)
_ARGUMENTS: dict[str, Callable[[Any, str], object]] = {
    "currency": lambda code, _: _currency(code),
    "digits": lambda digits, _: _digits(digits),
    "format": _format,
    "locale": lambda tag, _: None if tag is None else _locale(_NO_NAMES, tag),
    "timezone": lambda zone, name: None if zone is None else _zone(zone, name),
}


def check_filter(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """What is wrong with `value | name(*args, **kwargs)` whatever the customer, or None. UNKNOWN stands for
    what only rendering knows; arguments that are known are checked as the filter would check them."""
    signature = inspect.signature(FILTERS[name])
    parameters = list(signature.parameters.values())[1:]  # not the context
    try:
        bound = signature.replace(parameters=parameters).bind(value, *args, **kwargs)
    except TypeError as exc:
        takes = ", ".join(p.name for p in parameters[1:])
        return f"{name}: {exc} ({name} takes {takes})"
    try:
        for parameter, given in bound.arguments.items():
            if given is not UNKNOWN and parameter in _ARGUMENTS:
                _ARGUMENTS[parameter](given, name)
        if all(given is not UNKNOWN for given in bound.arguments.values()):
            FILTERS[name](_NO_NAMES, *bound.args, **bound.kwargs)
    except FilterError as exc:
        return str(exc)
    return None
