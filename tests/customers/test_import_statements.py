"""A guard against an import (or a plan) that grows faster than its file: the SQL statements it runs are
counted, and each further chunk must cost the same number of statements, with the shared-address lookup run a
fixed number of times per import. No clock is read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach.core.settings import Settings
from outreach.customers import importer
from outreach.customers.importer import import_customers
from outreach.customers.shared_addresses import SHAREABLE
from outreach.store.database import open_store

CHUNK = 25
SHARED_LOOKUP = re.compile(r"HAVING\s+count\(\*\)\s*>", re.IGNORECASE)


def customers_csv(path: Path, rows: int) -> Path:
    # Every tenth customer shares an email with the one before, so the lookup has something to find.
    lines = ["id,name,email,phone,country,consent_email,age"]
    for i in range(rows):
        mail = i - 1 if i % 10 == 9 else i
        lines.append(f"C{i:05d},Customer {i},user{mail}@example.com,+861380000{i:04d},CN,yes,{20 + i % 50}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def counted(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def statements_of_import(
    store_url_for: Callable[[], str],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    chunks: int,
    populated: bool,
) -> list[str]:
    url = store_url_for()
    engine = open_store(url)
    try:
        if populated:  # a store with customers: each chunk's customers are looked up
            earlier = tmp_path / "earlier.csv"
            earlier.write_text("id,name\nK1,Known Customer\n", encoding="utf-8")
            import_customers(engine, earlier, make_settings(url))
        path = customers_csv(tmp_path / f"c{chunks}.csv", CHUNK * chunks)
        with counted(engine) as statements:
            summary = import_customers(engine, path, make_settings(url))
        assert summary.created == CHUNK * chunks
        assert summary.shared_addresses, "the file has shared emails"
        return statements
    finally:
        engine.dispose()


@pytest.fixture
def fresh_store(store_url: str, tmp_path: Path) -> Callable[[], str]:
    """A new empty store per call: a new SQLite file, or the test's PostgreSQL database emptied."""
    from tests.conftest import _reset_postgres

    calls = iter(range(1_000))

    def make() -> str:
        if store_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'store{next(calls)}.db'}"
        _reset_postgres(store_url)
        return store_url

    return make


@pytest.mark.parametrize("populated", [False, True], ids=["empty-store", "store-with-customers"])
def test_each_chunk_of_an_import_costs_the_same_statements_and_shared_addresses_are_looked_up_once(
    fresh_store: Callable[[], str], tmp_path: Path, make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch, populated: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr(importer, "CHUNK", CHUNK)
    runs = {n: statements_of_import(fresh_store, tmp_path, make_settings, n, populated) for n in (3, 6, 9)}
    totals = {n: len(s) for n, s in runs.items()}
    assert totals[6] - totals[3] == totals[9] - totals[6] > 0, totals
    lookups = {n: sum(1 for s in found if SHARED_LOOKUP.search(s)) for n, found in runs.items()}
    assert lookups[3] == lookups[6] == lookups[9] == len(SHAREABLE), lookups  # one per address column
