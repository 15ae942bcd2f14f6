"""Delivering one batch of ledger rows: claim, check consent again, render planned content, pace, send through the
providers, record.

This is everything a worker does; the Dramatiq actor in `workers/` only calls `deliver_batch`.

Rows under a throttle (their campaign's, their channel's provider rate: see `outreach.delivery.throttles`) go out at
the pace their limiters give, in small chunks, the stricter limit winning. A batch takes on only what can
start within `throttle_horizon` seconds, so no row stays claimed for long: the rest is put back to `queued`
and its ids go back on the queue, due shortly before the permits kept for them.

The ledger follows each message as it goes (outreach.delivery.send_recorder): a row is noted as handed over
right before its provider call, and its result is committed within milliseconds of the answer, so a worker
killed mid-batch leaves uncertain only the messages it was sending at that moment.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from outreach.channels import make_provider
from outreach.channels.base import NO_HOOKS, OutgoingMessage, Provider, SendHooks, SendResult
from outreach.channels.email_message import message_id_for
from outreach.core.settings import Settings
from outreach.delivery.content_at_send import render_claimed
from outreach.delivery.outcomes import RetryPlan, record_outcomes
from outreach.delivery.send_checks import send_time_blocks
from outreach.delivery.send_recorder import SendRecorder, committer_for
from outreach.delivery.throttles import Grant, Limit, Throttles, due_times, ticket_for
from outreach.planning.queueing import Transport, enqueue_in_batches
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status, claim, move
from outreach.store.outage import log_wait, store_unreachable, when_reachable
from outreach.store.schema import deliveries

log = logging.getLogger(__name__)

# Rows whose permits fall within this span go to the provider together (one SMTP session, say).
CHUNK_SECONDS = 0.25
# Rows put back come off the queue this long before their permits are due (at most half the horizon).
LEAD_SECONDS = 2.0

# A row to send now and when it may go (local monotonic clock; None: at once).
Timed = tuple[float | None, DeliveryRow]


@dataclass(frozen=True)
class BatchOutcome:
    claimed: int
    sent: int
    blocked: int
    retrying: int
    # Rows put back on the queue because their throttle would not let them start within the horizon.
    deferred: int = 0


@dataclass
class Pacing:
    """A batch's sendable rows split by throttle: groups to send now, and rows put back with a delay (ms)."""

    now: list[list[Timed]]
    later: list[tuple[list[DeliveryRow], int]]


def deliver_batch(
    engine: Engine, settings: Settings, transport: Transport, ids: Sequence[int], throttles: Throttles | None = None
) -> BatchOutcome:
    """Deliver the rows among `ids` that are still queued; safe to call twice with the same ids.

    `throttles` (a worker keeps one) remembers campaign throttles between batches; without it one is made.
    """
    claimed = claim(engine, ids)
    if not claimed:
        return BatchOutcome(0, 0, 0, 0)
    try:
        blocked, pacing = _prepare(engine, settings, transport, claimed, ids, throttles)
    except Exception as exc:
        if store_unreachable(exc):
            give_back(engine, settings, claimed)
        raise
    deferred = [row for rows, _ in pacing.later for row in rows]
    going = [row for group in pacing.now for _, row in group]
    providers = {channel: make_provider(channel, settings) for channel in {row["channel"] for row in going}}
    names = {channel: provider.name for channel, provider in providers.items()}
    results, retry = asyncio.run(_send_recorded(engine, settings, going, pacing.now, providers, names))
    for delay_ms, retry_ids in retry.by_delay.items():
        enqueue_in_batches(transport, retry_ids, settings.batch_size, delay_ms)
    sent = sum(1 for r in results if r.outcome == "sent")
    retrying = sum(len(v) for v in retry.by_delay.values())
    return BatchOutcome(len(claimed) - len(deferred), sent, len(blocked), retrying, len(deferred))


def _prepare(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    claimed: list[DeliveryRow],
    ids: Sequence[int],
    throttles: Throttles | None,
) -> tuple[dict[int, tuple[str, str]], Pacing]:
    """Everything before the first message goes: the send-time checks (blocked rows recorded), the content,
    the pace (rows beyond the horizon given back and enqueued again)."""
    blocked = send_time_blocks(engine, claimed)
    rendered, unrenderable = render_claimed(engine, settings, [row for row in claimed if row["id"] not in blocked])
    blocked.update(unrenderable)
    sendable = [row for row in rendered if row["id"] not in blocked]
    try:
        pacing = pace(engine, throttles or Throttles(settings), sendable, ids)
    except Exception:
        # The limiter is out of reach: nothing was sent, so nothing may stay claimed.
        release(engine, sendable)
        record_outcomes(engine, claimed, [], blocked, settings)
        raise
    deferred = [row for rows, _ in pacing.later for row in rows]
    if deferred:
        for rows, delay_ms in pacing.later:
            # before the ids are on the queue again, or a worker could find them taken
            release(engine, rows, timedelta(milliseconds=delay_ms))
            transport.enqueue([row["id"] for row in rows], delay_ms)
    if blocked:
        record_outcomes(engine, claimed, [], blocked, settings)
    return blocked, pacing


def give_back(engine: Engine, settings: Settings, claimed: Sequence[DeliveryRow]) -> None:
    """The store went away before anything of the batch was handed over: once it is back (waiting up to
    `record_retry_seconds`), put the rows still held by this claim back to `queued`, for the broker's retry
    of the batch's message to find. If it stays away they are the sweep's (claimed, never handed over)."""
    note = log_wait(log, f"{len(claimed)} claimed rows, none sent yet, wait to be put back", settings.database_url)
    try:
        when_reachable(lambda: release(engine, claimed, why="the store went away"), settings.record_retry_seconds, note)
    except Exception as exc:
        if not store_unreachable(exc):
            raise
        log.warning("%d claimed rows left for the sweep, which queues them again (never handed over)", len(claimed))


async def _send_recorded(
    engine: Engine,
    settings: Settings,
    going: list[DeliveryRow],
    groups: list[list[Timed]],
    providers: dict[str, Provider],
    names: dict[str, str],
) -> tuple[list[SendResult], RetryPlan]:
    """Send the groups, the ledger following each message (outreach.delivery.send_recorder)."""
    recorder = SendRecorder(committer_for(engine, settings), going, names)
    try:
        if going:
            await _send(groups, providers, settings, recorder)
    finally:
        await recorder.close()
    return recorder.results, recorder.retry


def pace(engine: Engine, throttles: Throttles, rows: Sequence[DeliveryRow], ids: Sequence[int]) -> Pacing:
    """Reserve permits for the rows of each (campaign, channel) on every limit that applies to them.

    Rows whose permits come within the horizon get their moment; the rest are handed back with a delay, their
    permits kept under a ticket for exactly those rows. `ids` (the batch as enqueued) names the ticket an
    earlier batch may have left for these rows.
    """
    ticket = ticket_for(ids)
    groups: dict[tuple[str, str], list[DeliveryRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: int(r["id"])):
        groups[(row["campaign_id"], row["channel"])].append(row)
    pacing = Pacing([], [])
    for (campaign_id, channel), group in groups.items():
        limits = throttles.limits(engine, campaign_id, channel)
        if not limits:
            pacing.now.append([(None, row) for row in group])
            continue
        grants: list[tuple[Limit, Grant, float]] = []
        for limit in limits:
            grant = throttles.limiter.reserve(limit, len(group), ticket)
            grants.append((limit, grant, time.monotonic()))
        due = due_times(grants, len(group))
        now = time.monotonic()
        taken = bisect.bisect_right(due, now + throttles.horizon)
        pacing.now.append(list(zip(due[:taken], group[:taken], strict=True)))
        if taken < len(group):
            rest = group[taken:]
            kept = ticket_for(row["id"] for row in rest)
            for limit, grant, _ in grants:
                throttles.limiter.hold(limit, kept, grant.start + taken * limit.rate.interval, len(rest))
            lead = min(LEAD_SECONDS, throttles.horizon / 2)
            pacing.later.append((rest, int(max(0.0, due[taken] - now - lead) * 1000)))
    return pacing


def release(engine: Engine, rows: Sequence[DeliveryRow], wait: timedelta | None = None, why: str = "throttle") -> None:
    """Put claimed rows this batch will not send back to `queued`, as they were before the claim (only those
    still held by it); `wait` is how long they wait for their throttle slot (so the sweep does not take them
    for rows the broker lost)."""
    if not rows:
        return
    now = utcnow()
    d = deliveries.c
    by_token: dict[str | None, list[int]] = defaultdict(list)
    for row in rows:
        by_token[row["claim_token"]].append(row["id"])
    waited = {"wait_s": round(wait.total_seconds(), 1)} if wait else {}
    with engine.begin() as conn:
        for token, row_ids in by_token.items():
            move(
                conn,
                Status.QUEUED,
                row_ids,
                expect=[Status.SENDING],
                token=token,
                now=now,
                values={
                    "attempts": d.attempts - 1,  # the claim counted an attempt that was not made
                    "claim_token": None,
                    "claimed_at": None,
                    "enqueued_at": now,
                    "next_attempt_at": now + wait if wait else d.next_attempt_at,
                },
                event="delivery.released",
                describe=lambda r: {"channel": r["channel"], "why": why, **waited},
            )


async def _send(
    groups: list[list[Timed]], providers: dict[str, Provider], settings: Settings, hooks: SendHooks = NO_HOOKS
) -> list[SendResult]:
    at_once: dict[str, list[OutgoingMessage]] = defaultdict(list)
    paced: list[list[Timed]] = []
    for group in groups:
        if group and group[0][0] is None:
            for _, row in group:
                at_once[row["channel"]].append(outgoing(row, settings))
        elif group:
            paced.append(group)
    batches = await asyncio.gather(
        *(providers[ch].send_many(msgs, hooks) for ch, msgs in at_once.items()),
        *(_send_paced(providers[group[0][1]["channel"]], group, settings, hooks) for group in paced),
    )
    return [result for batch in batches for result in batch]


async def _send_paced(
    provider: Provider, group: list[Timed], settings: Settings, hooks: SendHooks = NO_HOOKS
) -> list[SendResult]:
    """Send rows in chunks, each when the last permit in it is due (never before)."""
    results: list[SendResult] = []
    start = 0
    while start < len(group):
        first = group[start][0] or 0.0
        end = start + 1
        while end < len(group) and (group[end][0] or 0.0) <= first + CHUNK_SECONDS:
            end += 1
        wait = (group[end - 1][0] or 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        results.extend(await provider.send_many([outgoing(row, settings) for _, row in group[start:end]], hooks))
        start = end
    return results


def outgoing(row: DeliveryRow, settings: Settings) -> OutgoingMessage:
    """The message a ledger row records, exactly as planned (or as replayed)."""
    message_id = None
    if row["channel"] == "email":
        message_id = message_id_for(row["id"], row["idempotency_key"], settings.email_from)
    return OutgoingMessage(
        delivery_id=row["id"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        to=row["address"] or "",
        body=row["body"] or "",
        subject=row["subject"],
        html=row["html"],
        headers=row["headers"] or {},
        message_id=message_id,
    )
