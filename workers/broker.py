"""The broker named by OUTREACH_BROKER_URL: Redis for real workers, or Dramatiq's StubBroker run in-process.

Commands, the web app, tests and benchmarks open it with `running_workers` (a context manager); only
`workers.main`, whose broker lives as long as its process, calls `setup` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.engine import Engine

from outreach.channels import check_providers
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.store.database import open_store
from workers.actors import DELIVER_BATCH, WorkerContext, declare_actors

# Longer delays are not given to the in-process broker (see DramatiqTransport.enqueue).
STUB_MAX_DELAY_MS = 60_000


class DramatiqTransport:
    """Sends ledger row ids to the deliver_batch actor without needing the actor object."""

    def __init__(self, broker: dramatiq.Broker, queue_name: str) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None:
        if delay_ms > STUB_MAX_DELAY_MS and isinstance(self.broker, StubBroker):
            # The in-process broker ends with the command that runs it: a message for hours from now would be
            # lost with it and would only keep `drain` waiting. The ledger keeps these rows (`not_before`);
            # `outreach scheduler` releases them when they are due.
            return
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue_name,
            actor_name=DELIVER_BATCH,
            args=(list(ids),),
            kwargs={},
            options={},
        )
        self.broker.enqueue(message, delay=delay_ms or None)


@dataclass
class BrokerHandle:
    broker: dramatiq.Broker
    transport: DramatiqTransport
    engine: Engine
    settings: Settings
    worker: dramatiq.Worker | None = None

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def start_worker(self, threads: int | None = None) -> dramatiq.Worker:
        """In-process worker threads (one set per broker, started on first use)."""
        if self.worker is None:
            self.worker = dramatiq.Worker(
                self.broker, worker_threads=threads or self.settings.stub_worker_threads, worker_timeout=100
            )
            self.worker.start()
        return self.worker

    def drain(self, timeout_ms: int | None = None) -> None:
        """In-process broker: wait until every message (retries included) has been handled."""
        assert isinstance(self.broker, StubBroker)
        worker = self.start_worker()
        self.broker.join(self.settings.queue_name, timeout=timeout_ms, fail_fast=True)
        worker.join()

    def deliver_in_process(self, timeout_ms: int | None = None) -> None:
        """In-process broker: `drain`, so that what was enqueued is delivered before the caller goes on.
        Redis broker: nothing (the workers, other processes, deliver)."""
        if self.in_process:
            self.drain(timeout_ms)

    def close(self) -> None:
        """Stop the worker threads of this process (if any) and close the broker, even if stopping fails."""
        worker, self.worker = self.worker, None
        try:
            if worker is not None:
                worker.stop()
        finally:
            self.broker.close()


def make_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url=url, namespace=settings.broker_namespace)  # type: ignore[no-untyped-call]
    if url.startswith("stub://"):
        broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    raise InputError.single("OUTREACH_BROKER_URL", f"{url!r}: use redis://host:port/db or stub://")


def setup(settings: Settings, engine: Engine | None = None) -> BrokerHandle:
    """Create the broker, make it Dramatiq's global one, and declare the actors on it.

    The caller closes it (`BrokerHandle.close`): use `running_workers`, which does, unless the broker lives as
    long as the process (`workers.main`). Raises InputError (providers, broker URL, rates) with no broker left
    open."""
    check_providers(settings)
    engine = engine or open_store(settings.database_url)
    broker = make_broker(settings)
    try:
        dramatiq.set_broker(broker)
        transport = DramatiqTransport(broker, settings.queue_name)
        declare_actors(broker, WorkerContext(settings, engine, transport))
        broker.declare_queue(settings.queue_name)
    except BaseException:
        broker.close()
        raise
    return BrokerHandle(broker, transport, engine, settings)


@contextmanager
def running_workers(
    settings: Settings, engine: Engine | None = None, *, start: bool = True, threads: int | None = None
) -> Iterator[BrokerHandle]:
    """The broker of `settings` for the length of a `with` block, its actors declared (see `setup`).

    `start`: with the in-process broker (stub://), start this process's worker threads (`threads`, default
    the stub_worker_threads setting) on entry, so that what the block enqueues is delivered while it runs;
    call `handle.deliver_in_process()` (or `handle.drain()`) to wait until it all has been before the block
    ends. With `start=False` no thread runs until the block calls `handle.drain()` or
    `handle.start_worker()`. With Redis `start` changes nothing: messages are only enqueued, for the workers
    of `outreach worker` (a block may still call `handle.start_worker()` to work here too).

    On leaving the block, however it is left (normally, by an exception, by KeyboardInterrupt or SystemExit),
    the worker threads are stopped and the broker is closed; what is still queued in an in-process broker is
    dropped with it (the ledger keeps those rows for `outreach sweep`). No drain happens on exit. `engine`:
    the store the actors use; if None, one is opened from settings.database_url and disposed of on exit.

    Raises InputError before the block runs when the providers, the broker URL or a provider rate is wrong.
    """
    own_engine = engine is None
    store = engine if engine is not None else open_store(settings.database_url)
    try:
        handle = setup(settings, store)
        try:
            if start and handle.in_process:
                handle.start_worker(threads)
            yield handle
        finally:
            handle.close()
    finally:
        if own_engine:
            store.dispose()
