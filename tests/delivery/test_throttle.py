"""Throttles: campaign `throttle` and provider rates, held across worker processes through Redis.

Timing is measured over generous windows on the real servers' arrival times and the ledger's `sent_at`, and
asserted within tolerances a correct implementation cannot miss on a busy machine: a rate within ±10%, no
pause longer than 2 s. A limiter lets one second's worth of permits go at once after an idle spell (the burst
allowance), so rates below are counted after that burst: (messages - burst) / (last - first).
"""

from __future__ import annotations

import itertools
import multiprocessing
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from outreach.core.errors import InputError
from outreach.core.settings import Settings, load_settings
from outreach.delivery.throttles import Limit, Limiter, LocalLimiter, Rate, RedisLimiter, Throttles, due_times
from outreach.store.database import open_store
from outreach.store.ledger import open_count
from tests.commands import OUTREACH, environment
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from tests.test_workers_redis import stop, wait_until_done
from workers.broker import setup


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


def arrival_times(server: SmtpServer) -> list[float]:
    """Record when the SMTP server accepts each message (time.time(), comparable across processes)."""
    handler = server.handler
    times: list[float] = []
    accept = handler.handle_DATA

    async def timed(smtp: Any, session: Any, envelope: Any) -> str:
        reply = await accept(smtp, session, envelope)
        if reply.startswith("250"):
            times.append(time.time())
        return reply

    handler.handle_DATA = timed  # type: ignore[method-assign]
    return times


def paced_rate(times: list[float], burst: float) -> float:
    times = sorted(times)
    return (len(times) - burst) / (times[-1] - times[0])


def largest_gap(times: list[float]) -> float:
    times = sorted(times)
    return max(b - a for a, b in itertools.pairwise(times))


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
    from outreach.delivery.throttles import Grant

    fast, slow = Limit("campaign:x", Rate.parse("10/s")), Limit("provider:email", Rate.parse("2/s"))
    due = due_times([(fast, Grant(100.0, 100.0), 0.0), (slow, Grant(101.0, 100.0), 0.0)], 3)
    # The provider's 2/s wins: its permits start 1 s from now, and may go half a second early (1 s's worth).
    assert due == pytest.approx([0.5, 1.0, 1.5])


# --- the limiter alone, on Redis ------------------------------------------------------------------------


@pytest.fixture(params=["redis", "in-process"])
def limiter(request: pytest.FixtureRequest) -> Limiter:
    if request.param == "in-process":
        return LocalLimiter()
    import redis

    url = request.getfixturevalue("redis_url")
    return RedisLimiter(redis.Redis.from_url(url), request.getfixturevalue("broker_namespace"))


def test_tickets_keep_a_place_in_line_and_unused_permits_go_back(limiter: Limiter) -> None:
    limit = Limit(f"campaign:{uuid.uuid4().hex[:8]}", Rate.parse("10/s"))
    first = limiter.reserve(limit, 50, "batch")
    assert first.start == pytest.approx(first.now, abs=0.01)  # an idle limiter: at once
    # The batch sends 20 now and puts 30 back, keeping their permits under a ticket for those rows.
    limiter.hold(limit, "rest", first.start + 2.0, 30)
    newcomer = limiter.reserve(limit, 10, "newcomer")
    assert newcomer.start == pytest.approx(first.start + 5.0, abs=0.001)  # behind all 50
    back = limiter.reserve(limit, 30, "rest")
    assert back.start == pytest.approx(first.start + 2.0, abs=0.001)  # its place, not the end of the line
    assert limiter.reserve(limit, 1, "rest").start == pytest.approx(first.start + 6.0, abs=0.001)  # used once
    # Only 4 of a ticket's 10 rows are still to be sent: the other 6 permits go back to the line.
    limiter.hold(limit, "some-sent", first.start + 6.1, 10)
    limiter.reserve(limit, 10, "filler")  # the permits that ticket stands for
    assert limiter.reserve(limit, 4, "some-sent").start == pytest.approx(first.start + 6.1, abs=0.001)
    assert limiter.reserve(limit, 1, "next").start == pytest.approx(first.start + 6.5, abs=0.001)
    limiter.refund(limit, 1)
    assert limiter.reserve(limit, 1, "again").start == pytest.approx(first.start + 6.5, abs=0.001)
    # A ticket whose moment passed long ago (its message came back far too late) is not honoured.
    limiter.hold(limit, "late", first.now - 5.0, 3)
    assert limiter.reserve(limit, 3, "late").start == pytest.approx(first.start + 6.6, abs=0.001)


def _take_permits(redis_url: str, namespace: str, permits: int, ready: Any, out: Any) -> None:
    """In a separate process: take permits in chunks of 5 as fast as the shared limiter lets us."""
    import redis

    limiter = RedisLimiter(redis.Redis.from_url(redis_url), namespace)
    limit = Limit("campaign:shared", Rate.parse("50/s"))
    ready.wait(60)  # both processes start together
    times: list[float] = []
    while len(times) < permits:
        grant = limiter.reserve(limit, 5, uuid.uuid4().hex)
        for due in due_times([(limit, grant, time.monotonic())], 5):
            time.sleep(max(0.0, due - time.monotonic()))
            times.append(time.time())
    out.put(times)


def test_two_processes_share_one_rate_through_redis(redis_url: str, broker_namespace: str) -> None:
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_take_permits, args=(redis_url, broker_namespace, 150, ready, out)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    runs = [out.get(timeout=90) for _ in processes]
    for process in processes:
        process.join(30)
    together = sorted(t for run in runs for t in run)
    span = together[-1] - together[0]
    # 300 permits at 50/s, the first 50 at once: 5 s. Alone, each process would have taken 2 s.
    assert paced_rate(together, 50) == pytest.approx(50, rel=0.10)
    for run in runs:  # both took their turns all along, not one after the other
        assert max(run) - min(run) > 0.7 * span
    assert largest_gap(together) < 1.0


# --- two worker processes, one campaign -----------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_throttle_holds_across_two_worker_processes(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        store_url, broker_url=redis_url, broker_namespace=broker_namespace, smtp_url=smtp_server.url, batch_size=10
    )
    engine = open_store(store_url)
    handle = setup(settings, engine)
    (tmp_path / "work").mkdir()
    p = Pipeline(settings, engine, handle, tmp_path / "work")
    arrived = arrival_times(smtp_server)
    try:
        p.import_csv(customers(600))
        plan = p.run(p.campaign(campaign("20/s")), deliver=False)
        assert len(plan.row_ids) == 600
        workers = subprocess.Popen(
            [OUTREACH, "worker", "--processes", "2", "--threads", "2"],
            env=environment(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_done(p, "paced", workers, timeout=120)
        finally:
            stop(workers)
        rows = p.rows()
    finally:
        handle.close()
        engine.dispose()
    # Every message exactly once.
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [f"t{i:04d}@example.com" for i in range(600)]
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    # At 20/s, measured where the mail arrives (about 29 s) and in the ledger (a batch of 10 is recorded at once).
    assert paced_rate(arrived, 20) == pytest.approx(20, rel=0.10)
    assert largest_gap(arrived) < 2.0
    sent_at = [r["sent_at"].timestamp() for r in rows]
    assert paced_rate(sent_at, 20) == pytest.approx(20, rel=0.10)
    assert largest_gap(sent_at) < 2.0


# --- the in-process broker ------------------------------------------------------------------------------


@pytest.fixture
def stub_pipeline(
    sqlite_url: str, make_settings: Callable[..., Settings], smtp_server: SmtpServer, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    """An engine on the in-process broker with the settings a test asks for."""
    made: list[Pipeline] = []

    def build(**overrides: Any) -> Pipeline:
        settings = make_settings(sqlite_url, smtp_url=smtp_server.url, **overrides)
        engine = open_store(sqlite_url)
        folder = tmp_path / "work"
        folder.mkdir()
        made.append(Pipeline(settings, engine, setup(settings, engine), folder))
        return made[-1]

    yield build
    for p in made:
        p.handle.close()
        p.engine.dispose()


def test_provider_rate_from_settings_paces_in_process(
    stub_pipeline: Callable[..., Pipeline], smtp_server: SmtpServer
) -> None:
    # The campaign allows 40/s, the email provider 10/s: the stricter wins. SMS's rate has nothing to do with it.
    p = stub_pipeline(provider_rates={"email": "10/s", "sms": "1/s"}, batch_size=10)
    arrived = arrival_times(smtp_server)
    p.import_csv(customers(40))
    p.run(p.campaign(campaign("40/s")))
    assert len(arrived) == 40
    # 10 at once, then 30 more at 10/s: 3 s. Never sooner; later only by what a busy machine adds.
    span = max(arrived) - min(arrived)
    assert 2.7 <= span <= 5.0
    assert {r["status"] for r in p.rows()} == {"sent"}


@pytest.mark.parametrize("broker", ["stub", "redis"])
def test_a_long_batch_is_sent_in_turns_without_stalls(
    broker: str, stub_pipeline: Callable[..., Pipeline], smtp_server: SmtpServer, request: pytest.FixtureRequest
) -> None:
    # One batch of 60 rows at 10/s takes 5 s, but a batch takes on only 2 s at a time: the rest goes back to
    # the queue with its permits kept, and comes back in time to go on at the same pace. (With Redis: the
    # limiter and the delayed messages on Redis, worker threads in this process.)
    options: dict[str, Any] = {}
    if broker == "redis":
        options = {"broker_url": request.getfixturevalue("redis_url")}
        options["broker_namespace"] = request.getfixturevalue("broker_namespace")
    p = stub_pipeline(batch_size=60, throttle_horizon=2.0, **options)
    arrived = arrival_times(smtp_server)
    p.import_csv(customers(60))
    if broker == "stub":
        p.run(p.campaign(campaign("10/s")))
    else:
        p.run(p.campaign(campaign("10/s")), deliver=False)
        p.handle.start_worker(2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with p.engine.connect() as conn:
                if open_count(conn, "paced") == 0:
                    break
            time.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [f"t{i:04d}@example.com" for i in range(60)]
    span = max(arrived) - min(arrived)
    assert 4.5 <= span <= 7.5  # 10 at once, then 50 at 10/s: 5 s
    assert largest_gap(arrived) < 1.0
    rows = p.rows()
    # Rows put back were not counted as attempts, and none stayed claimed much longer than the horizon.
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
    assert max((r["sent_at"] - r["claimed_at"]).total_seconds() for r in rows) < 2.0 + 2.0
