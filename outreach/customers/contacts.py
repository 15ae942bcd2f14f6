"""Checking and normalising a customer's core fields: phone numbers to E.164, emails, country, locale, zone."""

from __future__ import annotations

import functools
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from outreach.customers import phone_numbers
from outreach.customers.email_check import checked_email
from outreach.store.fields import ADDRESS_FIELDS


def check_core_fields(core: dict[str, str]) -> list[str]:
    """Problems with country, timezone, locale and name; normalises country and locale in place."""
    errors = []
    country = core.get("country")
    if country is not None:
        country, problem = _country(country)
        core["country"] = country
        if problem:
            errors.append(problem)
    tz = core.get("timezone")
    if tz is not None:
        problem = _timezone_problem(tz)
        if problem:
            errors.append(problem)
    locale = core.get("locale")
    if locale is not None:
        normal, problem = _locale(locale)
        if problem:
            errors.append(problem)
        else:
            core["locale"] = normal
    if len(core.get("name", "")) > 200:
        errors.append("name is longer than 200 characters")
    return errors


# Countries, zones and locales: a file has few distinct ones, each checked once.
_DISTINCT = 4096


@functools.lru_cache(maxsize=_DISTINCT)
def _country(raw: str) -> tuple[str, str | None]:
    country = raw.upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        return country, f"country {country!r} is not an ISO 3166 two-letter code"
    return country, None


@functools.lru_cache(maxsize=_DISTINCT)
def _timezone_problem(tz: str) -> str | None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return f"timezone {tz!r} is not an IANA time zone (like Asia/Shanghai)"
    return None


@functools.lru_cache(maxsize=_DISTINCT)
def _locale(locale: str) -> tuple[str, str | None]:
    parts = locale.replace("_", "-").split("-")
    if not (2 <= len(parts[0]) <= 3 and parts[0].isalpha() and all(p.isalnum() for p in parts)):
        return locale, f"locale {locale!r} is not a language tag (like zh-CN or en)"
    return "-".join([parts[0].lower(), *parts[1:]]), None


def normalize_email(raw: str) -> tuple[str, str | None]:
    """The normalised address, or `raw` and why it is not an email address (see `email_check`)."""
    return checked_email(raw)


def normalize_phone(raw: str, region: str | None) -> tuple[str, str | None]:
    """E.164 form of a phone number; national numbers need the customer's (or the default) country."""
    fast = phone_numbers.valid_e164(raw)
    if fast is not None:
        return fast, None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and not region:
            return raw, f"phone {raw!r} has no country code: write it as +CC... or give a country"
        return raw, f"phone {raw!r} is not a phone number"
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region and not raw.strip().startswith("+") else ""
        return raw, f"phone {raw!r} is not a valid number{where}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


ADDRESS_COLUMNS = tuple(column for column, _ in ADDRESS_FIELDS.values())
_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def normalize_address(column: str, raw: str, region: str | None) -> tuple[str, str | None]:
    """The stored form of an address column (`email`, `phone`, `whatsapp`, `wechat_openid`), or the raw text
    and why it is unusable."""
    if column == "email":
        return normalize_email(raw)
    if column in ("phone", "whatsapp"):
        value, problem = normalize_phone(raw, region)
        return value, problem.replace("phone", column, 1) if problem and column != "phone" else problem
    if column == "wechat_openid":
        if _OPENID.match(raw):
            return raw, None
        return raw, f"wechat_openid {raw!r} is not a WeChat OpenID"
    raise ValueError(f"{column} is not an address column")
