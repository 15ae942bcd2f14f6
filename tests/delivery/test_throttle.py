"""Throttles: campaign `throttle` and provider rates, held across worker processes through Redis.

Nothing here measures how long anything took. The limiter's arithmetic runs on an injected clock
(`LocalLimiter(clock)`, and the batches' reading of the time, see `on_fake_clock`) and is asserted exactly:
when each permit is due, how many rows a batch takes on within its horizon, how many it hands back and when
they come back, who keeps their place in line. Where real processes and Redis's own clock take part, what is
counted is the limiter's bookkeeping (the grants, the tickets kept on Redis) and the ledger and the servers
(what was sent, once each; what was handed back, in what order), never a rate measured on a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from outreach.channels.base import NO_HOOKS, OutgoingMessage, SendHooks, SendResult
from outreach.core.errors import InputError
from outreach.core.settings import Settings, load_settings
from outreach.delivery import batches
from outreach.delivery.throttles import (
    Grant,
    Limit,
    LocalLimiter,
    Rate,
    Throttles,
    due_times,
    ticket_for,
)
from outreach.store.database import open_store
from outreach.store.ledger import open_count
from tests.commands import OUTREACH, environment
from tests.delivery.test_workers_redis import stop
from tests.fake_clock import FakeClock, exactly
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from workers.broker import running_workers


def campaign(throttle: str | None, campaign_id: str = "paced") -> str:
    line = f"throttle: {throttle}\n" if throttle else ""
    return f"""
id: {campaign_id}
name: Paced notice
purpose: service
{line}steps:
  - id: tell
    channel: email
    content:
      email:
        subject: "Notice for {{{{ name }}}}"
        text: "Dear {{{{ name }}}}, your statement is ready."
"""


def customers(count: int) -> str:
    return "id,name,email,consent_email\n" + "".join(
        f"t{i:04d},Customer {i},t{i:04d}@example.com,yes\n" for i in range(count)
    )


def on_fake_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Let `outreach.delivery.batches` read `clock` where it reads the monotonic time (when a grant was made,
    where the horizon ends, how long to wait for a permit). It has no clock parameter of its own."""
    monkeypatch.setattr(batches, "time", SimpleNamespace(monotonic=clock))


def paced(group: Sequence[tuple[float | None, Any]]) -> list[tuple[float, Any]]:
    """A paced group's (moment, row) pairs; every row under a throttle has a moment (None: unthrottled)."""
    assert all(due is not None for due, _ in group)
    return [(due, row) for due, row in group if due is not None]


def recorded_enqueues(monkeypatch: pytest.MonkeyPatch, p: Pipeline) -> list[tuple[list[int], int]]:
    """Every (ids, delay_ms) put on the queue through this process's transport, from now on: the planner's
    batches (delay 0) and the rows a batch hands back (their wait for their permits)."""
    enqueued: list[tuple[list[int], int]] = []
    enqueue = p.handle.transport.enqueue

    def recording(ids: Sequence[int], delay_ms: int = 0) -> None:
        enqueued.append((sorted(ids), delay_ms))
        enqueue(ids, delay_ms)

    monkeypatch.setattr(p.handle.transport, "enqueue", recording)
    return enqueued


# --- rates and settings ---------------------------------------------------------------------------------


def test_rates_and_provider_rates_from_settings(tmp_path: Path) -> None:
    assert Rate.parse("50/s").per_second == 50
    assert Rate.parse("300/m").per_second == 5
    assert Rate.parse("2000/h").interval == pytest.approx(1.8)
    assert Rate.parse("20/s").tolerance == pytest.approx(0.95)  # 20 may go at once, then one every 50 ms
    assert Rate.parse("1/m").tolerance == 0  # slower than 1/s: no burst at all
    for bad in ("0/s", "50 per second", "5/d", ""):
        with pytest.raises(ValueError):
            Rate.parse(bad)
    env = {"OUTREACH_CONFIG": str(tmp_path / "none.toml"), "OUTREACH_PROVIDER_RATES": " sms=100/s, email=500/m "}
    assert load_settings(env).provider_rates == {"sms": "100/s", "email": "500/m"}
    with pytest.raises(InputError, match="OUTREACH_PROVIDER_RATES"):
        load_settings({**env, "OUTREACH_PROVIDER_RATES": "sms:100/s"})
    with pytest.raises(InputError, match="sms: 'fast' is not a rate"):
        Throttles(Settings(provider_rates={"sms": "fast"}))


def test_stricter_limit_sets_each_rows_moment() -> None:
    fast, slow = Limit("campaign:x", Rate.parse("10/s")), Limit("provider:email", Rate.parse("2/s"))
    due = due_times([(fast, Grant(100.0, 100.0), 0.0), (slow, Grant(101.0, 100.0), 0.0)], 3)
    # The provider's 2/s wins: its permits start 1 s from now, and may go half a second early (1 s's worth).
    assert due == pytest.approx([0.5, 1.0, 1.5])


# --- pacing a batch (batches.pace), on an injected clock ------------------------------------------------


@pytest.fixture
def stub_pipeline(
    sqlite_url: str, make_settings: Callable[..., Settings], smtp_server: SmtpServer, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    """An engine on the in-process broker with the settings a test asks for."""
    with contextlib.ExitStack() as stack:

        def build(**overrides: Any) -> Pipeline:
            settings = make_settings(sqlite_url, smtp_url=smtp_server.url, **overrides)
            engine = open_store(sqlite_url)
            stack.callback(engine.dispose)  # after the broker is closed
            folder = tmp_path / "work"
            folder.mkdir()
            handle = stack.enter_context(running_workers(settings, engine, start=False))
            return Pipeline(settings, engine, handle, folder)

        yield build


@pytest.mark.parametrize(
    ("throttle", "provider_rate", "per_second"),
    [("40/s", "10/s", 10.0), ("5/s", "10/s", 5.0)],
    ids=["provider-stricter", "campaign-stricter"],
)
def test_the_stricter_of_campaign_throttle_and_provider_rate_sets_each_rows_moment(
    stub_pipeline: Callable[..., Pipeline],
    monkeypatch: pytest.MonkeyPatch,
    throttle: str,
    provider_rate: str,
    per_second: float,
) -> None:
    """The campaign's throttle (read from the store, as the planner wrote it) and the email provider's rate
    (from the settings) both apply to each row, and the stricter one sets its moment: one second's worth at
    once, then one row per interval of the stricter rate. SMS's rate has nothing to do with email. Both
    lines are charged for every row. Asserted exactly on the batches' and the limiter's injected clock."""
    p = stub_pipeline(provider_rates={"email": provider_rate, "sms": "1/s"}, batch_size=40)
    p.import_csv(customers(40))
    p.run(p.campaign(campaign(throttle)), deliver=False)
    clock = FakeClock()
    on_fake_clock(monkeypatch, clock)
    throttles = Throttles(p.settings, LocalLimiter(clock), clock)
    campaign_limit = Limit("campaign:paced", Rate.parse(throttle))
    email_limit = Limit("provider:email", Rate.parse(provider_rate))
    assert throttles.limits(p.engine, "paced", "email") == [campaign_limit, email_limit]

    rows = p.rows()
    pacing = batches.pace(p.engine, throttles, rows, [r["id"] for r in rows])  # type: ignore[arg-type]

    assert pacing.later == []  # all within the horizon (10 s)
    [group] = map(paced, pacing.now)
    assert [row["id"] for _, row in group] == [r["id"] for r in rows]  # in line in id order
    # The first `per_second` rows may go at once (one second's worth), then one every interval.
    interval, burst = 1 / per_second, per_second - 1
    assert [due - clock.now for due, _ in group] == exactly([(i - burst) * interval for i in range(40)])
    # Both lines moved on by 40 permits: the next comer on each waits for them.
    for limit in (campaign_limit, email_limit):
        next_start = throttles.limiter.reserve(limit, 1, "next").start
        assert next_start == exactly(clock.now + 40 * limit.rate.interval)


def test_a_campaigns_throttle_is_read_again_after_the_cache_time(
    stub_pipeline: Callable[..., Pipeline],
) -> None:
    """A worker remembers a campaign's throttle for CAMPAIGN_CACHE_SECONDS (5 s) on its clock, then reads the
    store again: a throttle changed meanwhile applies from then on, not before."""
    import sqlalchemy as sa

    from outreach.store.schema import campaigns

    p = stub_pipeline()
    p.import_csv(customers(1))
    p.run(p.campaign(campaign("10/s")), deliver=False)
    clock = FakeClock()
    throttles = Throttles(p.settings, LocalLimiter(clock), clock)
    assert throttles.limits(p.engine, "paced", "email") == [Limit("campaign:paced", Rate.parse("10/s"))]
    with p.engine.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == "paced").values(throttle="2/s"))
    clock.advance(4.9)
    assert throttles.limits(p.engine, "paced", "email") == [Limit("campaign:paced", Rate.parse("10/s"))]
    clock.advance(0.1)
    assert throttles.limits(p.engine, "paced", "email") == [Limit("campaign:paced", Rate.parse("2/s"))]
    with p.engine.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == "paced").values(throttle=sa.null()))
    clock.advance(5.0)
    assert throttles.limits(p.engine, "paced", "email") == []  # unthrottled: no limit at all


def test_a_long_batch_takes_on_only_its_horizon_and_the_rest_keeps_its_place(
    stub_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batch of 60 rows at 10/s is a 5 s line, but a batch takes on only the rows whose permits come
    within `throttle_horizon` (2.05 s here): the first 30. The rest are handed back with a ticket and a
    wait; each time they come back (the clock moved on by their wait) they take on what is within the horizon
    again. Asserted on the injected clock: no row taken on is due later than the horizon, rows come back
    before their permits are due and always take some on (no stall), a newcomer that reserved meanwhile is
    behind all 60, and the 60 moments together are exactly one unbroken line at 10/s in id order."""
    p = stub_pipeline(batch_size=60, throttle_horizon=2.05)
    p.import_csv(customers(60))
    p.run(p.campaign(campaign("10/s")), deliver=False)
    clock = FakeClock()
    on_fake_clock(monkeypatch, clock)
    throttles = Throttles(p.settings, LocalLimiter(clock), clock)
    start = clock.now
    limit = Limit("campaign:paced", Rate.parse("10/s"))

    rows: list[Any] = p.rows()
    taken_per_pass: list[int] = []
    moments: list[tuple[float, int]] = []
    while rows:
        pacing = batches.pace(p.engine, throttles, rows, [r["id"] for r in rows])
        [taken] = map(paced, pacing.now)
        taken_per_pass.append(len(taken))
        assert all(due <= clock.now + throttles.horizon for due, _ in taken)  # none claimed for longer
        if taken_per_pass[1:]:  # a pass of rows that came back: before their first permit, and some go
            assert taken and taken[0][0] >= clock.now
        moments.extend((due, row["id"]) for due, row in taken)
        if len(taken_per_pass) == 1:
            # While the rest wait, a newcomer reserves: it goes behind all 60, tickets keep their places.
            assert throttles.limiter.reserve(limit, 5, "newcomer").start == exactly(start + 6.0)
        if not pacing.later:
            break
        [(rest, delay_ms)] = pacing.later
        assert delay_ms > 0 and [r["id"] for r in rest] == [r["id"] for r in rows[len(taken) :]]
        clock.advance(delay_ms / 1000)
        rows = list(rest)

    assert taken_per_pass[0] == 30 and len(taken_per_pass) > 2
    ids = [r["id"] for r in p.rows()]
    assert [row_id for _, row_id in moments] == ids
    assert [due for due, _ in moments] == exactly([start - 0.9 + i * 0.1 for i in range(60)])


def test_rows_wait_for_their_permits_and_go_in_chunks(
    stub_pipeline: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a batch hands its provider, and what it holds back: rows whose permits are due go at once, in
    chunks of permits within CHUNK_SECONDS of one another (one provider call each); a row whose permit is an
    hour away has not gone, and the batch is still waiting for it. A batch that did not wait for a permit
    would have handed over the last row too, and finished."""
    p = stub_pipeline()
    p.import_csv(customers(5))
    p.run(p.campaign(campaign(None)), deliver=False)
    clock = FakeClock()
    on_fake_clock(monkeypatch, clock)
    rows = p.rows()
    ids = [r["id"] for r in rows]
    dues = [clock.now - 1.0, clock.now - 0.9, clock.now - 0.8, clock.now - 0.5, clock.now + 3600.0]
    group = list(zip(dues, rows, strict=True))

    class Recorder:
        name = "recorder"

        def __init__(self) -> None:
            self.calls: list[list[int]] = []
            self.due_sent = asyncio.Event()

        async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
            self.calls.append([m.delivery_id for m in messages])
            if sum(len(call) for call in self.calls) >= 4:
                self.due_sent.set()
            return [SendResult.sent(m, None) for m in messages]

    async def scenario() -> tuple[list[list[int]], bool]:
        provider = Recorder()
        task = asyncio.create_task(batches._send([group], {"email": provider}, p.settings))  # type: ignore[list-item]
        await asyncio.wait_for(provider.due_sent.wait(), 30)  # a deadline only: the four due rows went
        for _ in range(5):
            await asyncio.sleep(0)  # let the batch go on as far as it goes without waiting
        still_waiting = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return provider.calls, still_waiting

    calls, still_waiting = asyncio.run(scenario())
    assert calls == [ids[:3], ids[3:4]]
    assert still_waiting


# --- whole pipelines: what was sent, and what was handed back -------------------------------------------


@pytest.mark.parametrize("broker", ["stub", "redis"])
def test_a_long_batch_is_sent_in_turns_without_stalls(
    broker: str,
    stub_pipeline: Callable[..., Pipeline],
    smtp_server: SmtpServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long batch above, delivered for real (with Redis: the limiter and the delayed messages on Redis,
    worker threads in this process): every message exactly once; the batch was handed back in turns, each
    time the rows latest in line (a tail of what was still to send, so nobody jumps the line); and rows
    handed back were not counted as attempts. How long it took is not asserted: the moments are the
    injected-clock test's."""
    options: dict[str, Any] = {}
    if broker == "redis":
        options = {"broker_url": request.getfixturevalue("redis_url")}
        options["broker_namespace"] = request.getfixturevalue("broker_namespace")
    p = stub_pipeline(batch_size=60, throttle_horizon=2.0, **options)
    enqueued = recorded_enqueues(monkeypatch, p)
    p.import_csv(customers(60))
    if broker == "stub":
        plan = p.run(p.campaign(campaign("10/s")))
    else:
        plan = p.run(p.campaign(campaign("10/s")), deliver=False)
        p.handle.start_worker(2)
        deadline = time.monotonic() + 60  # a deadline only: it stops the waiting, and measures nothing
        while time.monotonic() < deadline:
            with p.engine.connect() as conn:
                if open_count(conn, "paced") == 0:
                    break
            time.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [f"t{i:04d}@example.com" for i in range(60)]
    rows = p.rows()
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    assert enqueued[0] == (sorted(plan.row_ids), 0)  # the planner's one batch
    handed_back = [ids for ids, delay_ms in enqueued[1:] if delay_ms > 0]
    assert len(handed_back) == len(enqueued) - 1 and handed_back  # a 5 s line at a 2 s horizon: in turns
    still_to_send = sorted(plan.row_ids)
    for ids in handed_back:
        assert 0 < len(ids) < len(still_to_send) and ids == still_to_send[-len(ids) :]
        still_to_send = ids


# --- two worker processes, one campaign -----------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_throttle_holds_across_two_worker_processes(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two `outreach worker` processes (two threads each) share the campaign's line on Redis. At 10/h (a
    permit every 6 minutes, no burst) and 12 batches of 5, exactly one message may go now: it goes, and
    every other row is handed back with its permits kept on Redis under a ticket for exactly its rows. The
    tickets together are one unbroken line behind the one message sent, and the rows are due back in that
    order. Workers with a limiter each would send one message per process and keep no ticket on Redis; a
    worker sending without its permit would send more; permits given twice or lost would show as tickets
    that overlap or leave gaps. Nothing is timed: the state is read once every row is sent or handed back."""
    import redis

    settings = make_settings(
        store_url, broker_url=redis_url, broker_namespace=broker_namespace, smtp_url=smtp_server.url, batch_size=5
    )
    engine = open_store(store_url)
    (tmp_path / "work").mkdir()
    try:
        with running_workers(settings, engine, start=False) as handle:
            p = Pipeline(settings, engine, handle, tmp_path / "work")
            enqueued = recorded_enqueues(monkeypatch, p)
            p.import_csv(customers(60))
            plan = p.run(p.campaign(campaign("10/h")), deliver=False)
            assert len(plan.row_ids) == 60 and len(enqueued) == 12
            workers = subprocess.Popen(
                [OUTREACH, "worker", "--processes", "2", "--threads", "2"],
                env=environment(settings),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: stop() reaches the worker children too
            )
            try:
                deadline = time.monotonic() + 120  # a deadline only: it stops the waiting, and measures nothing
                while not all(
                    r["status"] == "sent" or (r["status"] == "queued" and r["next_attempt_at"] is not None)
                    for r in p.rows()
                ):
                    if workers.poll() is not None:
                        raise AssertionError(f"workers exited: {workers.stderr.read().decode()}")  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, "timed out waiting for every row to be sent or handed back"
                    time.sleep(0.2)
            finally:
                stop(workers)
            rows = {r["id"]: r for r in p.rows()}
    finally:
        engine.dispose()

    [sent] = [r for r in rows.values() if r["status"] == "sent"]
    assert [m.rcpt_tos[0] for m in smtp_server.handler.received] == [sent["address"]]
    assert sent["attempts"] == 1
    assert {r["attempts"] for r in rows.values() if r is not sent} == {0}  # handing back is no attempt

    client = redis.Redis.from_url(redis_url)
    line_key = f"{broker_namespace}:throttle:campaign:paced"
    tickets: dict[str, tuple[int, int]] = {}
    for key in client.scan_iter(f"{line_key}:ticket:*"):
        start, count = client.get(key).decode().split(":")  # type: ignore[union-attr]
        tickets[key.decode().rsplit(":", 1)[1]] = (int(start), int(count))
    # One ticket per batch, for exactly the rows it handed back: the batch that sent its first row kept 4.
    expected = {}
    for ids, _ in enqueued:
        waiting = [i for i in ids if i != sent["id"]]
        assert waiting == ids or sent["id"] == ids[0]
        expected[ticket_for(waiting)] = len(waiting)
    assert {name: count for name, (_, count) in tickets.items()} == expected
    # The tickets make one line, in µs on Redis's clock: each starts where the one before ends, the first one
    # permit after the message that was sent, and the line's end is where the limiter stands.
    interval_us = round(Rate.parse("10/h").interval * 1_000_000)
    line = sorted(tickets.values())
    assert line[0][1] == 4
    for (start, count), (next_start, _) in itertools.pairwise(line):
        assert abs(next_start - (start + count * interval_us)) <= 1
    assert abs(int(client.get(line_key) or 0) - (line[-1][0] + line[-1][1] * interval_us)) <= 1
    # The rows handed back are due back in the order of their places in line.
    by_place = sorted(tickets.items(), key=lambda item: item[1][0])
    batch_of = {ticket_for([i for i in ids if i != sent["id"]]): ids for ids, _ in enqueued}
    due_back = [max(rows[i]["next_attempt_at"] for i in batch_of[name] if i != sent["id"]) for name, _ in by_place]
    assert due_back == sorted(due_back) and len(set(due_back)) == len(due_back)
