"""A store that went away: telling its errors (connection refused, lost, reset) from every other database
error, saying so in one line without a password or a statement, and trying again until it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa

from outreach.core.errors import OutreachError
from outreach.core.settings import mask_url

T = TypeVar("T")

# Waiting for the store: the first pause, doubled after each try up to the longest (seconds).
FIRST_WAIT = 0.1
LONGEST_WAIT = 2.0


class StoreUnreachable(OutreachError):
    """The store stayed out of reach for longer than the caller would wait."""


def _driver_errors() -> tuple[type[BaseException], ...]:
    """psycopg's own connection errors: the raw cursors (COPY, pipelined inserts) raise them unwrapped."""
    try:
        import psycopg
    except ImportError:  # SQLite only
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


def store_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from, `raise ... from`) says the store cannot be reached or
    dropped the connection, so that trying again later may work; an error in a statement (a constraint, a
    bug) is not."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StoreUnreachable):
            return True
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa.exc.OperationalError | sa.exc.InterfaceError):
            return True
        if isinstance(current, _driver_errors()):
            return True
        current = current.__cause__
    return False


def outage_reason(exc: BaseException) -> str:
    """What the driver said, on one line: no SQL, no parameters (they may hold customers' data)."""
    if isinstance(exc, StoreUnreachable):
        return str(exc)
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def store_name(url: str | sa.URL) -> str:
    """The store's URL as it may be shown: the password masked."""
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    return mask_url(url)


def waits(bound: float) -> Iterator[float]:
    """Pauses between tries, doubling from FIRST_WAIT to LONGEST_WAIT, until `bound` seconds have passed."""
    deadline = time.monotonic() + bound
    pause = FIRST_WAIT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        yield min(pause, left)
        pause = min(pause * 2, LONGEST_WAIT)


def when_reachable(
    call: Callable[[], T],
    bound: float,
    on_wait: Callable[[BaseException, float, int], None] | None = None,
) -> T:
    """`call()`, tried again while the store is out of reach, for up to `bound` seconds; then the last error
    goes through. `on_wait(error, pause, attempt)` is told before each pause. `call` must be safe to repeat:
    a commit whose answer was lost may have been made."""
    pauses = waits(bound)
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if not store_unreachable(exc):
                raise
            pause = next(pauses, None)
            if pause is None:
                raise
            if on_wait is not None:
                on_wait(exc, pause, attempt)
            time.sleep(pause)


def log_wait(log: logging.Logger, what: str, url: str) -> Callable[[BaseException, float, int], None]:
    """An `on_wait` that logs one warning line per try: `what` is waiting for the store at `url`."""
    password = urlsplit(url).password

    def note(exc: BaseException, pause: float, attempt: int) -> None:
        reason = outage_reason(exc)
        if password:
            reason = reason.replace(password, "***")
        log.warning(
            "the store %s is out of reach (%s): %s; trying again in %.1f s (attempt %d)",
            store_name(url), reason, what, pause, attempt,
        )  # fmt: skip

    return note
