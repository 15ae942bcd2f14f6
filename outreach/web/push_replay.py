"""Which WeChat pushes were already taken: each (timestamp, nonce) once inside the replay window.

In plaintext mode WeChat's signature covers the token, `timestamp` and `nonce`, not the body, so a captured
push's query string signs any body. `wechat_hooks` refuses a timestamp outside `wechat_replay_window` and
claims the pair here before acting on a push. A pair is kept with the digest of what came under it until it
has left the window (`timestamp` + window, which for a timestamp ahead of our clock is up to twice the
window from now), so a second claim can tell WeChat's redelivery of the same push (`REPEAT`: acknowledged,
not acted on again) from another body under a captured signature (`REPLAY`: refused).

Two stores, one interface: Redis (`SET NX` with an expiry, under `<broker_namespace>:wechat:push:`) when
the broker is Redis, so every server behind the load balancer shares it; otherwise the `wechat_push_nonces`
table, whose primary key is the pair (a conflicting insert means it was taken) and whose expired rows are
deleted as new ones come.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.settings import Settings
from outreach.store.database import insert_ignoring_duplicates
from outreach.store.schema import wechat_push_nonces

# The longest nonce kept (the column's size); WeChat's are about ten digits.
MAX_NONCE = 64


class Seen(enum.Enum):
    NEW = "new"  # first time: act on it
    REPEAT = "repeat"  # the same pair with the same content: already taken (or being taken) once
    REPLAY = "replay"  # the same pair with other content: a captured signature on another body


@dataclass(frozen=True)
class PushPair:
    """A push's `timestamp` (Unix seconds) and `nonce`, the digest of its content, and when the pair leaves
    the replay window (after which it can no longer pass the timestamp check and is forgotten)."""

    timestamp: int
    nonce: str
    digest: str
    expires_at: datetime

    @classmethod
    def of(cls, timestamp: int, nonce: str, digest: str, window: timedelta) -> PushPair:
        return cls(timestamp, nonce, digest, datetime.fromtimestamp(timestamp, UTC) + window)


class PushNonces(Protocol):
    """Where the pairs taken are kept."""

    def claim(self, pair: PushPair, now: datetime) -> Seen:
        """Take the pair if no push has; otherwise say whether it came with the same content."""
        ...

    def release(self, pair: PushPair) -> None:
        """Forget a pair this process claimed and then failed to act on, so that WeChat's retry is taken."""
        ...

    def close(self) -> None: ...


# KEYS[1]: the pair's key; ARGV[1]: the digest that claimed it. Deletes it only if that claim still holds.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisPushNonces:
    """Pairs under `<namespace>:wechat:push:<timestamp>:<nonce>`, each expiring when it leaves the window."""

    def __init__(self, client: Any, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:wechat:push:"
        self._release = client.register_script(_RELEASE)

    def _key(self, pair: PushPair) -> str:
        return f"{self._prefix}{pair.timestamp}:{pair.nonce}"

    def claim(self, pair: PushPair, now: datetime) -> Seen:
        key = self._key(pair)
        # One second over, so that rounding never lets a pair go while it could still pass the check.
        ttl = max(1, math.ceil((pair.expires_at - now).total_seconds()) + 1)
        for _ in range(2):
            if self._client.set(key, pair.digest, nx=True, ex=ttl):
                return Seen.NEW
            held = cast(bytes | None, self._client.get(key))
            if held is not None:
                return Seen.REPEAT if held.decode() == pair.digest else Seen.REPLAY
            # It expired between the two calls: try once more.
        return Seen.REPLAY

    def release(self, pair: PushPair) -> None:
        self._release(keys=[self._key(pair)], args=[pair.digest])

    def close(self) -> None:
        self._client.close()


class SqlPushNonces:
    """Pairs in the `wechat_push_nonces` table of the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(self, pair: PushPair, now: datetime) -> Seen:
        t = wechat_push_nonces
        row = {"timestamp": pair.timestamp, "nonce": pair.nonce, "digest": pair.digest, "expires_at": pair.expires_at}
        for _ in range(2):
            with self._engine.begin() as conn:
                # RETURNING tells, not rowcount: on PostgreSQL this statement reports a rowcount of -1.
                taken = conn.execute(insert_ignoring_duplicates(conn, t).values(row).returning(t.c.nonce)).first()
                if taken is not None:
                    # Pairs out of the window can no longer pass the timestamp check: nothing needs them.
                    conn.execute(t.delete().where(t.c.expires_at < now))
                    return Seen.NEW
                held = conn.execute(
                    sa.select(t.c.digest).where(t.c.timestamp == pair.timestamp, t.c.nonce == pair.nonce)
                ).scalar()
            if held is not None:
                return Seen.REPEAT if held == pair.digest else Seen.REPLAY
            # Released (or deleted) between the two statements: try once more.
        return Seen.REPLAY

    def release(self, pair: PushPair) -> None:
        t = wechat_push_nonces
        with self._engine.begin() as conn:
            conn.execute(
                t.delete().where(t.c.timestamp == pair.timestamp, t.c.nonce == pair.nonce, t.c.digest == pair.digest)
            )

    def close(self) -> None:
        """The engine is the app's; it closes it."""


def push_nonces(settings: Settings, engine: Engine) -> PushNonces:
    """Redis under the broker's namespace when the broker is Redis; otherwise the store's table."""
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        return RedisPushNonces(redis.Redis.from_url(settings.broker_url), settings.broker_namespace)
    return SqlPushNonces(engine)
