"""The rate limiter alone (GCRA): permits spaced one interval apart on an injected clock, nothing saved up while
idle, tickets that keep a batch's place in line, and one line shared by two processes through Redis (their
grants asserted exactly, never a rate measured on a clock)."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest

from outreach.delivery.throttles import (
    Grant,
    Limit,
    Limiter,
    LocalLimiter,
    Rate,
    RedisLimiter,
)
from tests.fake_clock import FakeClock, exactly


def test_a_limiter_spaces_permits_and_saves_nothing_up_while_idle() -> None:
    """GCRA on an injected clock: permits follow one another one interval apart; an idle spell leaves the
    line at "now" (no credit saved beyond the burst allowance); a ticket is honoured while its first permit is
    at most the tolerance late, and not after."""
    clock = FakeClock()
    limiter = LocalLimiter(clock)
    limit = Limit("campaign:x", Rate.parse("10/s"))

    start = clock.now
    assert limiter.reserve(limit, 5, "a") == Grant(start, start)  # an idle limiter: at once
    assert limiter.reserve(limit, 5, "b").start == exactly(start + 0.5)  # behind the first five
    clock.advance(0.2)
    later = limiter.reserve(limit, 1, "c")
    assert later.start == exactly(start + 1.0) and later.now == clock.now  # still behind: the clock moved less
    clock.advance(60.0)  # an idle minute: the next permit is due now, not a minute's worth in the past
    assert limiter.reserve(limit, 3, "d") == Grant(clock.now, clock.now)
    assert limiter.reserve(limit, 1, "e").start == exactly(clock.now + 0.3)  # behind those three

    burst = Limit("campaign:y", Rate.parse("20/s"))  # may go 0.95 s early
    line_start = clock.now
    limiter.reserve(burst, 100, "ahead")  # the line is 5 s long
    limiter.hold(burst, "in-time", clock.now, 3)
    clock.advance(burst.rate.tolerance)
    assert limiter.reserve(burst, 3, "in-time").start == line_start  # exactly as late as allowed: its place
    limiter.hold(burst, "too-late", clock.now, 3)
    clock.advance(burst.rate.tolerance + 0.001)
    assert limiter.reserve(burst, 3, "too-late").start == exactly(line_start + 5.0)  # the end of the line


@pytest.fixture(params=["redis", "in-process"])
def limiter(request: pytest.FixtureRequest) -> Limiter:
    if request.param == "in-process":
        return LocalLimiter(FakeClock())
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
    assert limiter.reserve(limit, 1, "again").start == pytest.approx(first.start + 6.6, abs=0.001)
    # A ticket whose moment passed long ago (its message came back far too late) is not honoured.
    limiter.hold(limit, "late", first.now - 5.0, 3)
    assert limiter.reserve(limit, 3, "late").start == pytest.approx(first.start + 6.7, abs=0.001)


PERMITS_PER_TURN = 5
SHARED_RATE = "5/s"  # five permits a second: each turn of five moves the line on by one second


def _reserve_in_turns(redis_url: str, namespace: str, turns: int, barrier: Any, out: Any) -> None:
    """In a separate process: take PERMITS_PER_TURN permits a turn from the shared limiter, in step with
    the other process (both reserve once between two passes of the barrier); report each grant's start."""
    import redis

    limiter = RedisLimiter(redis.Redis.from_url(redis_url), namespace)
    limit = Limit("campaign:shared", Rate.parse(SHARED_RATE))
    starts: list[int] = []
    for _ in range(turns):
        barrier.wait(60)
        grant = limiter.reserve(limit, PERMITS_PER_TURN, uuid.uuid4().hex)
        starts.append(round(grant.start * 1_000_000))  # µs on Redis's clock, as Redis keeps them
    out.put(starts)


def test_two_processes_share_one_line_through_redis(redis_url: str, broker_namespace: str) -> None:
    """Two processes reserving from one limit on Redis, turn by turn, get one line between them: every grant
    starts exactly where the one before it (from either process) ended, none overlaps, none leaves a gap,
    and the two alternate. Processes with a limiter each would both be granted the same moments (overlaps);
    a line that lost permits would show gaps or overlaps. Only Redis's clock is read, by Redis: the line is a
    minute long after a few milliseconds of reserving, so every grant is queued behind the one before."""
    turns = 30
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_reserve_in_turns, args=(redis_url, broker_namespace, turns, barrier, out))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    runs = [out.get(timeout=90) for _ in processes]
    for process in processes:
        process.join(30)
    by_start = sorted((start, index) for index, run in enumerate(runs) for start in run)
    interval_us = round(Rate.parse(SHARED_RATE).interval * PERMITS_PER_TURN * 1_000_000)
    first = by_start[0][0]
    assert [start for start, _ in by_start] == [first + k * interval_us for k in range(2 * turns)]
    # In every turn each process got one grant: the line alternates between them, pair by pair.
    for k in range(turns):
        assert {by_start[2 * k][1], by_start[2 * k + 1][1]} == {0, 1}
