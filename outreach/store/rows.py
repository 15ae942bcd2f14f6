"""Typed rows of the profile store, as they cross the store's boundary (the ledger's is ledger.DeliveryRow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

import sqlalchemy as sa


class CustomerRow(TypedDict):
    id: str
    name: str | None
    email: str | None
    email_invalid: str | None
    phone: str | None
    phone_invalid: str | None
    whatsapp: str | None
    whatsapp_invalid: str | None
    wechat_openid: str | None
    wechat_invalid: str | None
    country: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    provisional_since: datetime | None
    created_at: datetime
    updated_at: datetime


class ConsentRow(TypedDict):
    customer_id: str
    channel: str
    purpose: str
    status: str
    source: str
    changed_at: datetime


class TimelineEvent(TypedDict):
    id: int
    customer_id: str
    at: datetime
    kind: str
    delivery_id: int | None
    campaign_id: str | None
    data: dict[str, Any] | None


def customer_row(mapping: sa.RowMapping) -> CustomerRow:
    return cast(CustomerRow, dict(mapping))


def consent_row(mapping: sa.RowMapping) -> ConsentRow:
    return cast(ConsentRow, dict(mapping))


def timeline_event(mapping: sa.RowMapping) -> TimelineEvent:
    return cast(TimelineEvent, dict(mapping))
