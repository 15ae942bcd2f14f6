"""One scheduler at a time: a lock that a second `outreach scheduler` waits on, and takes over within seconds
when the holder dies.

PostgreSQL: a session advisory lock held by a dedicated connection (the server releases it when that
connection dies, process killed or host gone). SQLite (one machine): an exclusive `flock` on a file beside
the database (the kernel releases it when the process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

log = logging.getLogger(__name__)

LOCK_KEY = 727275  # the advisory lock id of the scheduler (migrations use 727274)


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...

    def held(self) -> bool:
        """Still ours (the connection holding it is alive)."""
        ...

    def release(self) -> None: ...


class PostgresLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self.conn is None:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = bool(self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())
        if not got:
            self.conn.close()
            self.conn = None
        return got

    def held(self) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.DBAPIError:
            return False

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            self.conn.close()
            self.conn = None


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def try_acquire(self) -> bool:
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.file = handle
        return True

    def held(self) -> bool:
        return self.file is not None

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def leader_lock(engine: Engine) -> LeaderLock:
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine)
    database = make_url(engine.url).database
    folder = Path(database).resolve().parent if database else Path.cwd()
    return FileLock(folder / f"{Path(database or 'outreach').name}.scheduler.lock")


def wait_for_leadership(lock: LeaderLock, poll: float, should_stop: object = None) -> bool:
    """Block until the lock is ours (True), polling every `poll` seconds; False if asked to stop first.

    `should_stop` is anything with `is_set()` (a threading.Event)."""
    announced = False
    while True:
        if lock.try_acquire():
            if announced:
                log.info("took over as the active scheduler")
            return True
        if not announced:
            log.info("another scheduler is active; standing by")
            announced = True
        if should_stop is not None and should_stop.is_set():  # type: ignore[attr-defined]
            return False
        time.sleep(poll)
