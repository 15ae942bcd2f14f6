"""Following a batch one message at a time: the ledger learns that a message is about to go before it goes,
and what the provider said as soon as it says it, so a worker killed mid-batch leaves uncertain only what
it was actually sending.

A `SendRecorder` is the providers' `SendHooks` for one batch:

* `before(message)`: the row must carry `send_started_at` (committed) before the provider hands it over.
  The first `before` of a batch notes its row and the next one in sending order (`LOOKAHEAD`), so a
  connection sending one message after another waits for a commit only every other message. If the row is no
  longer this batch's (the sweep took it back as never handed over), the answer is False and it does not go.
* `after(result)`: the result is committed with the next start note of the batch, or after `RESULT_WINDOW`
  seconds when none comes.

Every worker thread of a process hands its notes and results to one `GroupCommitter`, which writes whatever
has come in since its last transaction in one transaction: with four threads sending, a commit carries the
news of four or more messages.

After kill -9, then, a `sending` row without `send_started_at` was never handed over, and the sweep puts it
back to `queued`. A row with it is, per connection (an SMTP session, one of a provider's concurrent
requests), at most two messages: the one whose call had started, and either the one before it (its result
travels with the next commit, at most one message later) or the one after it (noted ahead). So `unknown`
rows after a crash are at most 2 x processes x threads x connections per batch, and in practice fewer.

When the store goes away (a crash, a failover, a lost network), the committer keeps every round it holds and
tries it again with backoff for `record_retry_seconds`, logging a warning each time. Meanwhile nothing new is
handed over: each connection's next `before` waits for its start note, which waits in the held round. Past
the bound the held results are written to a spill file (outreach.delivery.spill) and the rounds fail: the
batches stop, Dramatiq tries their messages again later, and the next `outreach worker` start or
`outreach sweep` writes the spilled results to the ledger. A provider's answer is thus lost only if the
worker dies while holding it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.channels.base import OutgoingMessage, SendResult
from outreach.core.settings import Settings, mask_secrets
from outreach.delivery.outcomes import RetryPlan, record_in
from outreach.delivery.spill import spill
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status
from outreach.store.outage import StoreUnreachable, outage_reason, store_name, store_unreachable, when_reachable
from outreach.store.schema import deliveries

log = logging.getLogger(__name__)

# How long a result may wait for a start note to travel with before it is committed alone (seconds).
RESULT_WINDOW = 0.005
# Rows noted as started beyond the one about to go, in the batch's sending order.
LOOKAHEAD = 1
# A committer thread with nothing to do for this long ends (a new one starts with the next batch).
IDLE_SECONDS = 2.0


@dataclass
class Written:
    """What one round of a batch came to: the rows it noted that may go, and the rows to retry later."""

    going: set[int] = field(default_factory=set)
    retry: RetryPlan = field(default_factory=RetryPlan)


@dataclass
class _Round:
    rows: Mapping[int, DeliveryRow]
    starts: list[int]
    results: list[SendResult]
    names: Mapping[str, str]
    future: concurrent.futures.Future[Written]


class GroupCommitter:
    """One thread per engine and process that writes what every batch hands it, one transaction per round."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._ready = threading.Condition()
        self._pending: list[_Round] = []
        self._thread: threading.Thread | None = None
        self.transactions = 0

    def submit(
        self, rows: Mapping[int, DeliveryRow], starts: list[int], results: list[SendResult], names: Mapping[str, str]
    ) -> concurrent.futures.Future[Written]:
        future: concurrent.futures.Future[Written] = concurrent.futures.Future()
        with self._ready:
            self._pending.append(_Round(rows, starts, results, names, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outreach-group-commit", daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._pending:
                    self._ready.wait(IDLE_SECONDS)
                if not self._pending:
                    self._thread = None
                    return
                work, self._pending = self._pending, []
            try:
                written = self._write(work)
            except Exception as exc:  # each batch learns it from its own future
                for item in work:
                    item.future.set_exception(exc)
            else:
                self.transactions += 1
                for item, outcome in zip(work, written, strict=True):
                    item.future.set_result(outcome)

    def _write(self, work: list[_Round]) -> list[Written]:
        """Write the rounds; while the store is out of reach, keep them (and whatever comes in meanwhile, added
        to `work`) and try again for `record_retry_seconds`, then spill their results to a file and fail.

        Trying again is safe after a commit whose answer was lost: every move is conditional on the row's
        status and claim, a start note only sets the time again, and the retries are enqueued only once the
        round is answered."""

        def attempt() -> list[Written]:
            with self._ready:  # what came in since: held, and written, with the rest
                work.extend(self._pending)
                self._pending = []
            return write_rounds(self._engine, self._settings, work)

        def note(exc: BaseException, pause: float, tries: int) -> None:
            with self._ready:
                held = sum(len(item.results) for item in [*work, *self._pending])
            log.warning(
                "the store %s is out of reach (%s): keeping %d results and sending nothing new while waiting for "
                "it; trying again in %.1f s (attempt %d, spilling to %s after %g s)",
                store_name(self._settings.database_url), mask_secrets(outage_reason(exc), self._settings), held,
                pause, tries,
                self._settings.spill_dir, self._settings.record_retry_seconds,
            )  # fmt: skip

        try:
            return when_reachable(attempt, self._settings.record_retry_seconds, note)
        except Exception as exc:
            if not store_unreachable(exc):
                raise
            with self._ready:
                work.extend(self._pending)
                self._pending = []
            raise self._spill(work, exc) from exc

    def _spill(self, work: list[_Round], exc: BaseException) -> Exception:
        """Past the bound: the held results go to a spill file; the error each batch is failed with."""
        rows = {i: row for item in work for i, row in item.rows.items()}
        names = {channel: name for item in work for channel, name in item.names.items()}
        results = [result for item in work for result in item.results]
        reason = mask_secrets(outage_reason(exc), self._settings)
        waited = f"out of reach for {self._settings.record_retry_seconds:g} s ({reason})"
        store = store_name(self._settings.database_url)
        if not results:
            return StoreUnreachable(f"the store {store} is {waited}; nothing was sent meanwhile")
        try:
            path = spill(self._settings.spill_dir, results, rows, names)
        except OSError as error:
            log.error("the store %s is %s and %d results could not be spilled to %s: %s; their rows will be "
                      "unknown", store, waited, len(results), self._settings.spill_dir, error)  # fmt: skip
            return StoreUnreachable(f"the store {store} is {waited}; {len(results)} results lost: {error}")
        log.warning("the store %s is %s: %d results spilled to %s, for the next `outreach worker` start or "
                    "`outreach sweep`", store, waited, len(results), path)  # fmt: skip
        return StoreUnreachable(f"the store {store} is {waited}; {len(results)} results spilled to {path}")


_committers: weakref.WeakKeyDictionary[Engine, GroupCommitter] = weakref.WeakKeyDictionary()
_committers_lock = threading.Lock()


def committer_for(engine: Engine, settings: Settings) -> GroupCommitter:
    """The process's committer for this engine."""
    with _committers_lock:
        committer = _committers.get(engine)
        if committer is None:
            committer = _committers[engine] = GroupCommitter(engine, settings)
        return committer


def write_rounds(engine: Engine, settings: Settings, work: Sequence[_Round]) -> list[Written]:
    """One transaction for every round: the results, then the start notes."""
    rows: dict[int, DeliveryRow] = {}
    names: dict[str, str] = {}
    results: list[SendResult] = []
    starts: list[DeliveryRow] = []
    for item in work:
        rows.update(item.rows)
        names.update(item.names)
        results.extend(item.results)
        starts.extend(item.rows[i] for i in item.starts)
    with engine.begin() as conn:
        retry = record_in(conn, rows, results, {}, settings, names) if results else RetryPlan()
        going = mark_started(conn, starts)
    delays = {i: delay for delay, ids in retry.by_delay.items() for i in ids}
    written = []
    for item in work:
        outcome = Written(going.intersection(item.starts))
        for result in item.results:
            if result.delivery_id in delays:
                outcome.retry.add(delays[result.delivery_id], result.delivery_id)
        written.append(outcome)
    return written


def mark_started(conn: Connection, rows: Iterable[DeliveryRow]) -> set[int]:
    """Note that these claimed rows are being handed to their provider now; returns those still held by the
    claim they were read with (the others must not go)."""
    held = sorted((row["id"], row["claim_token"]) for row in rows)
    if not held:
        return set()
    d = deliveries.c
    now = utcnow()
    update = (
        sa.update(deliveries)
        .where(sa.tuple_(d.id, d.claim_token).in_(held), d.status == Status.SENDING)
        .values(send_started_at=now, updated_at=now)
        .returning(d.id)
    )
    return set(conn.execute(update).scalars())


class SendRecorder:
    """The hooks of one batch's providers (see the module's text); use inside the batch's event loop, and
    `close()` at the end."""

    def __init__(self, committer: GroupCommitter, rows: Sequence[DeliveryRow], names: Mapping[str, str]) -> None:
        self._committer = committer
        self._rows = {row["id"]: row for row in rows}
        self._order = [row["id"] for row in rows]  # the order the providers are given them
        self._position = {delivery_id: index for index, delivery_id in enumerate(self._order)}
        self._names = dict(names)
        self._noting: dict[int, asyncio.Future[Written]] = {}  # row -> the round that notes it
        self._waiting: list[SendResult] = []  # results not yet handed to the committer
        self._rounds: list[asyncio.Future[Written]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self.results: list[SendResult] = []
        self.retry = RetryPlan()

    async def before(self, message: OutgoingMessage) -> bool:
        if self._error is not None:
            raise self._error
        delivery_id = message.delivery_id
        noted = self._noting.get(delivery_id)
        if noted is None:
            start = self._position[delivery_id]
            ahead = [i for i in self._order[start : start + 1 + LOOKAHEAD] if i not in self._noting]
            noted = self._submit(ahead)
        try:
            written = await noted
        except BaseException as exc:
            self._error = exc
            raise
        return delivery_id in written.going

    def after(self, result: SendResult) -> None:
        self._waiting.append(result)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RESULT_WINDOW, self._flush)

    async def close(self) -> None:
        """Hand over what is left and wait for every round; raises what a commit raised."""
        if self._waiting:
            self._submit([])
        outcomes = await asyncio.gather(*self._rounds, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            for delay_ms, ids in outcome.retry.by_delay.items():
                self.retry.by_delay[delay_ms].extend(ids)

    def _flush(self) -> None:
        self._timer = None
        if self._waiting:
            self._submit([])

    def _submit(self, starts: list[int]) -> asyncio.Future[Written]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        results, self._waiting = self._waiting, []
        self.results.extend(results)
        round_ = asyncio.wrap_future(self._committer.submit(self._rows, starts, results, self._names))
        self._rounds.append(round_)
        for delivery_id in starts:
            self._noting[delivery_id] = round_
        return round_
