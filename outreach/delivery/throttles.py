"""Throttles: how fast messages may leave, one rate shared by every worker thread, process and host.

Two kinds of limit apply to a ledger row: its campaign's `throttle` (`50/s`, `300/m`, `1000/h`, read from the
`campaigns` table) under the key `campaign:<id>`, and the configured `provider_rates` of its channel under
`provider:<channel>`. Where both apply the stricter one sets the pace, message by message.

Each key is a GCRA limiter ("virtual scheduling"): it keeps the theoretical time at which its next permit is
due, and a worker *reserves* N permits at once: it is told when the first may go; each next one follows one
interval later. Permits may go up to one second early (the burst allowance: after an idle spell, one second's
worth leaves at once), never more. With Redis the state lives under the broker's namespace and every step is
one Lua script on Redis's clock, so workers' clocks never matter; with the in-process broker (`stub://`) the
same limiter lives in the process.

A batch takes on only the sending that can start within `throttle_horizon` seconds (see `outreach.delivery.batches`);
the rest goes back to the queue with a *ticket*: the permits already reserved for those rows, kept under
their ids, so the rows keep their place in line when their message comes back instead of queueing again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.store.schema import campaigns

log = logging.getLogger(__name__)

BURST_SECONDS = 1.0
# How long a campaign's throttle is remembered by a worker before the store is asked again.
CAMPAIGN_CACHE_SECONDS = 5.0
# A ticket outlives the moment its permits are due by this much, then it is dropped.
TICKET_GRACE_SECONDS = 600.0

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    """A rate like `50/s`: `per_second` permits a second, with up to BURST_SECONDS' worth at once."""

    per_second: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"{text!r} is not a rate: write one like 50/s, 300/m or 1000/h")
        return cls(float(match.group(1)) / _UNIT_SECONDS[match.group(2)], text.strip())

    @property
    def interval(self) -> float:
        """Seconds between two permits."""
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How early a permit may go (seconds): one second's worth of permits after the first, or none."""
        return max(0.0, self.per_second * BURST_SECONDS - 1.0) * self.interval


@dataclass(frozen=True)
class Limit:
    """One limiter a row is under: its key (`campaign:<id>`, `provider:<channel>`) and rate."""

    key: str
    rate: Rate


@dataclass(frozen=True)
class Grant:
    """Permits reserved on one limiter: the first is due at `start` (minus the rate's tolerance), each next
    one `rate.interval` later. Both times are on the limiter's clock; `now` is that clock at the grant."""

    start: float
    now: float


class Limiter(Protocol):
    """Where the limiters' state lives: Redis (shared by all workers) or this process."""

    def reserve(self, limit: Limit, count: int, ticket: str) -> Grant:
        """Reserve `count` permits; permits held under `ticket` (see `hold`) are used first if still good."""
        ...

    def hold(self, limit: Limit, ticket: str, start: float, count: int) -> None:
        """Keep `count` reserved permits from `start` on for the rows named by `ticket`."""
        ...


def ticket_for(ids: Iterable[int]) -> str:
    """The name of a ticket for exactly these ledger rows."""
    text = ",".join(str(i) for i in sorted(ids))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


# KEYS[1]: the limiter's theoretical arrival time (µs on Redis's clock); KEYS[2]: a ticket for the rows.
# ARGV: permits, interval (µs), tolerance (µs). Returns the first permit's time and Redis's time (µs).
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = redis.call('GET', KEYS[2])
if held then
  redis.call('DEL', KEYS[2])
  local start, count = string.match(held, '^(%d+):(%d+)$')
  start, count = tonumber(start), tonumber(count)
  if start and start + tolerance >= now and count >= n then
    if count > n and tat > now then
      redis.call('SET', KEYS[1], string.format('%.0f', math.max(now, tat - (count - n) * interval)), 'KEEPTTL')
    end
    return {string.format('%.0f', start), string.format('%.0f', now)}
  end
end
local start = math.max(tat, now)
tat = start + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 60000)
return {string.format('%.0f', start), string.format('%.0f', now)}
"""

_MICROS = 1_000_000


class RedisLimiter:
    """Limiters shared by every worker through Redis, under `<namespace>:throttle:`."""

    def __init__(self, client: Any, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:throttle:"
        self._reserve = client.register_script(_RESERVE)

    def reserve(self, limit: Limit, count: int, ticket: str) -> Grant:
        key = self._prefix + limit.key
        args = [count, limit.rate.interval * _MICROS, limit.rate.tolerance * _MICROS]
        start, now = cast(list[bytes], self._reserve(keys=[key, f"{key}:ticket:{ticket}"], args=args))
        return Grant(int(start) / _MICROS, int(now) / _MICROS)

    def hold(self, limit: Limit, ticket: str, start: float, count: int) -> None:
        ttl = max(0.0, start - time.time()) + TICKET_GRACE_SECONDS
        key = f"{self._prefix}{limit.key}:ticket:{ticket}"
        self._client.set(key, f"{round(start * _MICROS)}:{count}", px=int(ttl * 1000))


class LocalLimiter:
    """The same limiters for the in-process broker: shared by the threads of this process only.

    `clock` is the limiter's clock (seconds, monotonic); a test may give one it moves itself."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}
        self._tickets: dict[tuple[str, str], tuple[float, int]] = {}

    def reserve(self, limit: Limit, count: int, ticket: str) -> Grant:
        interval = limit.rate.interval
        with self._lock:
            now = self._clock()
            tat = self._due.get(limit.key, 0.0)
            held = self._tickets.pop((limit.key, ticket), None)
            if held is not None and held[0] + limit.rate.tolerance >= now and held[1] >= count:
                if held[1] > count and tat > now:
                    self._due[limit.key] = max(now, tat - (held[1] - count) * interval)
                return Grant(held[0], now)
            start = max(tat, now)
            self._due[limit.key] = start + count * interval
            return Grant(start, now)

    def hold(self, limit: Limit, ticket: str, start: float, count: int) -> None:
        with self._lock:
            self._tickets[(limit.key, ticket)] = (start, count)


def make_limiter(settings: Settings) -> Limiter:
    """Redis under the broker's namespace when the broker is Redis; otherwise a limiter in this process."""
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        return RedisLimiter(redis.Redis.from_url(settings.broker_url), settings.broker_namespace)
    return LocalLimiter()


def provider_limits(settings: Settings) -> dict[str, Limit]:
    """The configured per-channel rates, checked: channel -> Limit. Raises InputError naming a bad one."""
    limits: dict[str, Limit] = {}
    problems: list[Problem] = []
    for channel, text in settings.provider_rates.items():
        try:
            limits[channel] = Limit(f"provider:{channel}", Rate.parse(str(text)))
        except ValueError as exc:
            problems.append(Problem("provider_rates", None, None, f"{channel}: {exc}"))
    if problems:
        raise InputError(problems)
    return limits


class Throttles:
    """What a worker needs to pace rows: the limits each (campaign, channel) is under, and the limiter.

    Campaign throttles come from the `campaigns` table (the planner writes them) and are remembered for
    CAMPAIGN_CACHE_SECONDS on `clock` (monotonic seconds); provider rates come from the settings.
    """

    def __init__(
        self, settings: Settings, limiter: Limiter | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.limiter = limiter or make_limiter(settings)
        self.horizon = max(0.1, settings.throttle_horizon)
        self._providers = provider_limits(settings)
        self._campaigns: dict[str, tuple[float, Limit | None]] = {}
        self._lock = threading.Lock()

    def limits(self, engine: Engine, campaign_id: str, channel: str) -> list[Limit]:
        """The limits for rows of this campaign on this channel, campaign first; empty when unlimited."""
        found = [self._campaign_limit(engine, campaign_id), self._providers.get(channel)]
        return [limit for limit in found if limit is not None]

    def _campaign_limit(self, engine: Engine, campaign_id: str) -> Limit | None:
        now = self.clock()
        with self._lock:
            cached = self._campaigns.get(campaign_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        with engine.connect() as conn:
            text = conn.execute(sa.select(campaigns.c.throttle).where(campaigns.c.id == campaign_id)).scalar()
        limit = None
        if text:
            try:
                limit = Limit(f"campaign:{campaign_id}", Rate.parse(text))
            except ValueError:
                log.warning("campaign %s: throttle %r is not a rate; sending unthrottled", campaign_id, text)
        with self._lock:
            self._campaigns[campaign_id] = (now + CAMPAIGN_CACHE_SECONDS, limit)
        return limit


def due_times(grants: Sequence[tuple[Limit, Grant, float]], count: int) -> list[float]:
    """When each of `count` rows may go, on the local monotonic clock: for every limit, (limit, grant, the
    local clock when the grant was made). The stricter limit wins for each row."""
    times: list[float] = []
    for i in range(count):
        times.append(
            max(
                local + (grant.start - grant.now) + i * limit.rate.interval - limit.rate.tolerance
                for limit, grant, local in grants
            )
        )
    return times
