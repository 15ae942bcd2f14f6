"""Throwaway stores for one benchmark run: an empty database and a Redis broker namespace, removed at the end."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.store.database import open_store

# What a run creates is named with these, so that anything a killed run leaves behind is easy to find.
DATABASE_PREFIX = "outreach_bench_"
NAMESPACE_PREFIX = "outreach-bench-"


@dataclass(frozen=True)
class Store:
    """An empty store (its schema ready) and an engine on it."""

    url: str
    engine: Engine

    @property
    def postgres_database(self) -> str | None:
        """The PostgreSQL database's name, which its backends show in their titles; None for SQLite."""
        return self.engine.url.database if self.engine.dialect.name == "postgresql" else None

    def describe(self) -> str:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            return f"PostgreSQL {str(version).split()[0]}"
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (file)"

    def analyze(self) -> None:
        """Fresh planner statistics after a bulk insert (PostgreSQL only)."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(sa.text("ANALYZE"))
                conn.commit()


@contextmanager
def empty_store(kind: str, folder: Path, admin_url: str) -> Iterator[Store]:
    """A temporary SQLite file in `folder` (`kind` "sqlite"), or a fresh PostgreSQL database created through
    `admin_url` and dropped afterwards."""
    with _empty_database(kind, folder, admin_url) as url:
        engine = open_store(url)
        try:
            yield Store(url, engine)
        finally:
            engine.dispose()


@contextmanager
def _empty_database(kind: str, folder: Path, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'outreach.db'}"
        return
    import psycopg
    from psycopg import sql

    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def broker_namespace(redis_url: str) -> Iterator[str]:
    """A broker namespace of the run's own; its Redis keys are deleted afterwards."""
    namespace = f"{NAMESPACE_PREFIX}{secrets.token_hex(5)}"
    try:
        yield namespace
    finally:
        _remove_keys(redis_url, namespace)


def _remove_keys(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()
