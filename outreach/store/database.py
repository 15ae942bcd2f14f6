"""The store: the engine (SQLite or PostgreSQL) ready to use, the engine's clock, and insert helpers that
speak both dialects. The tables are in `schema`, their upgrades in `migrations`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.store.migrations import migrate

_clock_offset = timedelta(0)


def utcnow() -> datetime:
    """The engine's clock: every decision about time (claims, schedules, quiet hours, caps) reads it."""
    return datetime.now(UTC) + _clock_offset


def shift_clock(offset: timedelta) -> None:
    """Run the engine's clock `offset` ahead of the real one (for simulations and tests: weeks in seconds)."""
    global _clock_offset
    _clock_offset = offset


def normalize_url(url: str) -> str:
    """Let users write `postgresql://...`; we talk to PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the store, with SQLite set up for several threads and processes."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, **kwargs)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # "database is locked" without waiting, when another writer got there first. A connection opened
        # with `reading()` only reads, and must not hold the lock while others write (WAL lets them).
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor: Any) -> None:
    """Changing the journal mode needs the database to itself, and SQLite answers "database is locked" at
    once (without the busy timeout) while another process creates the file: try again for a while."""
    import sqlite3
    import time

    deadline = time.monotonic() + 60
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


READ_ONLY = "outreach_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for a long read (streaming a segment) while other connections write."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def open_store(url: str, **kwargs: Any) -> Engine:
    """An engine whose schema is ready to use (`kwargs` go to `create_engine`, e.g. the pool size)."""
    engine = make_engine(url, **kwargs)
    migrate(engine)
    return engine


def insert_returning(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """Insert many rows, skipping duplicates (`ON CONFLICT DO NOTHING`); the `returning` columns of the rows
    actually inserted.

    On PostgreSQL this goes to psycopg's pipelined `executemany(returning=True)` directly: SQLAlchemy's
    multi-row VALUES statement for RETURNING spends most of its time converting a statement with tens of
    thousands of placeholders (measured 3-4 times slower for a chunk of 1,000 ledger rows).
    """
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        statement = insert_ignoring_duplicates(conn, table).returning(*(table.c[name] for name in returning))
        return [tuple(r) for r in conn.execute(statement, rows).all()]
    import psycopg
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(f'%({c})s' for c in columns)}) "
        f"ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
    )
    params = [{c: (Jsonb(v) if c in json_columns and v is not None else v) for c, v in row.items()} for row in rows]
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    cursor = raw.cursor()
    try:
        cursor.executemany(sql, params, returning=True)
        inserted: list[tuple[Any, ...]] = []
        while True:
            inserted.extend(cursor.fetchall())
            if not cursor.nextset():
                return inserted
    finally:
        cursor.close()


def insert_ignoring_duplicates(conn: Connection, table: sa.Table) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()
