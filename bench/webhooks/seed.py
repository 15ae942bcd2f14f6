"""What the store holds before the first request: ledger rows in status `sent` for the status callbacks to
settle, and the inbound SMS senders, half of them with an open NPS question. Written straight into the store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.stores import Store
from outreach.store.database import utcnow
from outreach.store.schema import customers, deliveries

CALLBACK_CAMPAIGN = "bench-sms-notice"
SURVEY_CAMPAIGN = "bench-sms-survey"
REPLY_CAMPAIGN = "bench-sms-reply"
SURVEY_EXPECTS = {"survey": "nps", "attribute": "nps_score"}
INSERT_CHUNK = 5_000


def sid(prefix: str, n: int) -> str:
    """A Twilio message id of the benchmark's own."""
    return f"SM{prefix}{n:030x}"


def seed(store: Store, rows: int, inbound: int) -> tuple[list[tuple[int, str, str]], list[str]]:
    """The ledger rows the callbacks settle as (id, provider sid, phone), and the phones of the `inbound`
    senders."""
    now = utcnow()
    sent_at = now - timedelta(minutes=10)
    people = [_customer(f"b{i:07d}", _phone("139", i), now) for i in range(rows)]
    ledger = [
        _ledger_row(CALLBACK_CAMPAIGN, p["id"], p["phone"], sid("b", i), sent_at, None) for i, p in enumerate(people)
    ]
    # Inbound senders: one customer per message; the even ones were asked an NPS question 10 minutes ago,
    # the odd ones got a plain message they may answer.
    senders = [_customer(f"r{i:07d}", _phone("138", i), now) for i in range(inbound)]
    asked = [
        _ledger_row(
            SURVEY_CAMPAIGN if i % 2 == 0 else REPLY_CAMPAIGN,
            p["id"],
            p["phone"],
            sid("r", i),
            sent_at,
            SURVEY_EXPECTS if i % 2 == 0 else None,
        )
        for i, p in enumerate(senders)
    ]
    _insert(store.engine, customers, people + senders)
    _insert(store.engine, deliveries, ledger + asked)
    with store.engine.connect() as conn:
        settled = [
            (int(r.id), str(r.provider_message_id), str(r.address))
            for r in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.provider_message_id, deliveries.c.address)
                .where(deliveries.c.campaign_id == CALLBACK_CAMPAIGN)
                .order_by(deliveries.c.id)
            )
        ]
    store.analyze()
    return settled, [s["phone"] for s in senders]


def _phone(prefix: str, n: int) -> str:
    return f"+86{prefix}{n:08d}"


def _customer(customer_id: str, phone: str, now: datetime) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": f"Customer {customer_id}",
        "phone": phone,
        "country": "CN",
        "locale": "en",
        "attributes": {},
        "created_at": now,
        "updated_at": now,
    }


def _ledger_row(
    campaign: str, customer_id: str, phone: str, sid: str, sent_at: datetime, expects: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "idempotency_key": f"{campaign}:bench:sms:{customer_id}:sms",
        "campaign_id": campaign,
        "occurrence": "bench",
        "step_id": "sms",
        "customer_id": customer_id,
        "channel": "sms",
        "purpose": "service",
        "status": "sent",
        "address": phone,
        "body": "Your card ending 1234 was used for CNY 88.00. Reply 0-10: how likely are you to recommend us?",
        "sms_segments": 1,
        "expects": expects,
        "attempts": 1,
        "provider": "twilio",
        "provider_message_id": sid,
        "sent_at": sent_at,
        "created_at": sent_at,
        "updated_at": sent_at,
    }


def _insert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), INSERT_CHUNK):
            conn.execute(table.insert(), rows[start : start + INSERT_CHUNK])
