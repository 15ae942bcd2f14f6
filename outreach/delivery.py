"""Delivering one batch of ledger rows: claim, check consent again, send through the providers, record.

This is everything a worker does; the Dramatiq actor in `workers/` only calls `deliver_batch`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from outreach.channels import make_provider
from outreach.channels.base import OutgoingMessage, Provider, SendResult
from outreach.channels.email_message import message_id_for
from outreach.config import Settings
from outreach.ledger import claim, record_outcomes, send_time_blocks
from outreach.queueing import Transport, enqueue_in_batches


@dataclass(frozen=True)
class BatchOutcome:
    claimed: int
    sent: int
    blocked: int
    retrying: int


def deliver_batch(engine: Engine, settings: Settings, transport: Transport, ids: Sequence[int]) -> BatchOutcome:
    """Deliver the rows among `ids` that are still queued; safe to call twice with the same ids."""
    claimed = claim(engine, ids)
    if not claimed:
        return BatchOutcome(0, 0, 0, 0)
    blocked = send_time_blocks(engine, claimed)
    sendable = [row for row in claimed if row["id"] not in blocked]
    providers = {channel: make_provider(channel, settings) for channel in {row["channel"] for row in sendable}}
    results = asyncio.run(_send(sendable, providers, settings)) if sendable else []
    names = {channel: provider.name for channel, provider in providers.items()}
    retry = record_outcomes(engine, claimed, results, blocked, settings, names)
    for delay_ms, retry_ids in retry.by_delay.items():
        enqueue_in_batches(transport, retry_ids, settings.batch_size, delay_ms)
    sent = sum(1 for r in results if r.outcome == "sent")
    return BatchOutcome(len(claimed), sent, len(blocked), sum(len(v) for v in retry.by_delay.values()))


async def _send(rows: list[dict[str, Any]], providers: dict[str, Provider], settings: Settings) -> list[SendResult]:
    by_channel: dict[str, list[OutgoingMessage]] = defaultdict(list)
    for row in rows:
        by_channel[row["channel"]].append(outgoing(row, settings))
    batches = await asyncio.gather(*(providers[ch].send_many(msgs) for ch, msgs in by_channel.items()))
    return [result for batch in batches for result in batch]


def outgoing(row: dict[str, Any], settings: Settings) -> OutgoingMessage:
    """The message a ledger row records, exactly as planned (or as replayed)."""
    message_id = None
    if row["channel"] == "email":
        message_id = message_id_for(row["id"], row["idempotency_key"], settings.email_from)
    return OutgoingMessage(
        delivery_id=row["id"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        to=row["address"],
        body=row["body"] or "",
        subject=row["subject"],
        html=row["html"],
        headers=row["headers"] or {},
        message_id=message_id,
    )
