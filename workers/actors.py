"""Dramatiq actors. Each is a few lines: the work itself lives in `outreach`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import dramatiq
from sqlalchemy.engine import Engine

from outreach.core.settings import Settings, mask_secrets
from outreach.delivery.batches import deliver_batch
from outreach.delivery.throttles import Throttles
from outreach.planning.queueing import Transport
from outreach.store.outage import outage_reason, store_name, store_unreachable

log = logging.getLogger(__name__)

DELIVER_BATCH = "deliver_batch"


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    engine: Engine
    transport: Transport
    # Campaign throttles and provider rates, on the limiter all workers share (made from `settings` if None).
    throttles: Throttles | None = None


_context: WorkerContext | None = None


def _deliver_batch(ids: list[int]) -> None:
    assert _context is not None, "workers.broker.setup() must run before actors do"
    try:
        deliver_batch(_context.engine, _context.settings, _context.transport, ids, _context.throttles)
    except Exception as exc:
        if not store_unreachable(exc):
            raise
        # Expected while the store is away, and said in one line: Dramatiq logs a Retry without a traceback
        # (a statement and its parameters) and tries the message again with its backoff, as for any failure.
        store = store_name(_context.settings.database_url)
        reason = mask_secrets(outage_reason(exc), _context.settings)
        log.info("batch of %d ids to be tried again later: the store %s is out of reach (%s)", len(ids), store, reason)
        raise dramatiq.Retry(f"the store {store} is out of reach: {reason}") from None


def declare_actors(broker: dramatiq.Broker, context: WorkerContext) -> None:
    """Bind the actors to `broker`; they work with `context`'s store and settings.

    Raises InputError when a configured provider rate is not a rate.
    """
    global _context
    _context = context if context.throttles is not None else replace(context, throttles=Throttles(context.settings))
    dramatiq.Actor(
        _deliver_batch,
        broker=broker,
        actor_name=DELIVER_BATCH,
        queue_name=context.settings.queue_name,
        priority=0,
        options={
            # The ledger decides what is still owed; these retries only cover a batch that crashed (store
            # unreachable, say) before recording. A claimed row is never sent twice by them.
            "max_retries": 5,
            "min_backoff": 1_000,
            "max_backoff": 60_000,
            "time_limit": 10 * 60 * 1000,
        },
    )
