"""Customer fields: the core columns every profile has, and the value types of profile attributes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, Literal

from outreach.channels.base import CHANNELS

CORE_FIELDS = ("id", "name", "email", "phone", "whatsapp", "wechat_openid", "country", "locale", "timezone")
PURPOSES = ("service", "marketing")
# Consent columns of an import file -> (channel, purpose). `consent_sms` is marketing consent (the contract's
# original column); `consent_sms_marketing` says the same explicitly; `consent_sms_service` is consent to
# service messages, which go unless it is `no`.
CONSENT_COLUMNS: dict[str, tuple[str, str]] = {
    **{f"consent_{ch}": (ch, "marketing") for ch in CHANNELS},
    **{f"consent_{ch}_{purpose}": (ch, purpose) for ch in CHANNELS for purpose in PURPOSES},
}
# The columns that mark an address unusable hold why, in this many characters (schema.customers).
INVALID_REASON_LENGTH = 80


def invalid_reason(why: str) -> str:
    """`why`, shortened to fit the column that marks an address unusable (the full text is on the timeline
    or in the import's warning)."""
    return why if len(why) <= INVALID_REASON_LENGTH else why[: INVALID_REASON_LENGTH - 1] + "…"


# Where each channel's address lives on a profile, and the column that marks it unusable (and why).
ADDRESS_FIELDS = {
    "sms": ("phone", "phone_invalid"),
    "email": ("email", "email_invalid"),
    "whatsapp": ("whatsapp", "whatsapp_invalid"),  # the number the customer uses on WhatsApp, E.164
    "wechat": ("wechat_openid", "wechat_invalid"),  # the customer's OpenID under the bank's Official Account
}

AttributeType = Literal["number", "boolean", "date", "string", "list"]
ATTRIBUTE_TYPES: tuple[AttributeType, ...] = ("number", "boolean", "date", "string", "list")


class AttributeCatalog(dict[str, AttributeType]):
    """Every known attribute and its type; `untyped` names those known only from a column imported empty
    (listed as string until a value, a type hint or a survey's `expects:` gives them their type)."""

    def __init__(self, types: dict[str, AttributeType], untyped: frozenset[str] = frozenset()) -> None:
        super().__init__(types)
        self.untyped = untyped


ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\-]{0,63}$")
_NUMBER = re.compile(r"^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_number(text: str) -> int | float | None:
    """A number written plainly (no leading zeros: `0123` is an identifier, not a number)."""
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    if value.is_integer() and "." not in text and "e" not in text.lower():
        return int(text)
    return value


def parse_boolean(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def parse_date(text: str) -> str | None:
    """An ISO date (`2026-01-31`) or date-time, normalised so that text order is time order.

    Dates stay `YYYY-MM-DD`; date-times become UTC `YYYY-MM-DDTHH:MM:SSZ` (naive ones are taken as UTC;
    fractions of a second are dropped).
    """
    text = text.strip()
    try:
        if _DATE.match(text):
            return date.fromisoformat(text).isoformat()
        if _DATETIME.match(text):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            # isoformat, not strftime: strftime writes year 999 as "999", which breaks text order.
            return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    except (ValueError, OverflowError):  # OverflowError: an offset that moves the date past year 1 or 9999
        return None
    return None


def convert_text(text: str, kind: AttributeType) -> tuple[Any, str | None]:
    """Text from a CSV cell as a value of `kind`, or an error message."""
    if kind == "string":
        return text, None
    if kind == "list":
        return [part.strip() for part in text.split(";") if part.strip()], None
    if kind == "boolean":
        value: Any = parse_boolean(text)
        return value, None if value is not None else f"{text!r} is not true or false"
    if kind == "number":
        value = parse_number(text)
        return value, None if value is not None else f"{text!r} is not a number"
    value = parse_date(text)
    return value, None if value is not None else f"{text!r} is not an ISO date (YYYY-MM-DD)"


def json_value_type(value: Any) -> AttributeType | None:
    """The attribute type of a value from a JSON line, or None when it has none (objects, nested lists)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "date" if parse_date(value) is not None else "string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "list"
    return None


def convert_json(value: Any, kind: AttributeType) -> tuple[Any, str | None]:
    """A JSON value as an attribute of `kind`, or an error message."""
    found = json_value_type(value)
    if found == kind:
        return (parse_date(value) if kind == "date" else value), None
    if kind == "string" and found == "date":
        return value, None
    if kind == "list" and isinstance(value, str):
        return convert_text(value, "list")
    if found is None:
        return None, f"{json_type_name(value)} values are not supported as attributes"
    return None, f"{value!r} is a {found}, but this attribute holds {kind} values"


def json_type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "nested list"
    return type(value).__name__
