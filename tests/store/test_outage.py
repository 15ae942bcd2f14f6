"""Telling a store that is out of reach from a statement that is wrong, with a real PostgreSQL driver on a
port nobody listens on and a real SQLite file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach.store.database import make_engine
from outreach.store.outage import (
    StoreUnreachable,
    outage_reason,
    store_name,
    store_unreachable,
    waits,
    when_reachable,
)
from tests.services import free_port


def nobody_there() -> sa.Engine:
    return make_engine(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/outreach")


def test_a_refused_connection_is_an_outage_said_in_one_line() -> None:
    engine = nobody_there()
    with pytest.raises(sa.exc.OperationalError) as caught, engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert store_unreachable(caught.value)
    reason = outage_reason(caught.value)
    assert "\n" not in reason and "Connection refused" in reason and "sqlalche.me" not in reason
    assert store_unreachable(StoreUnreachable("gone"))
    try:
        raise RuntimeError("the batch stopped") from caught.value
    except RuntimeError as wrapped:
        assert store_unreachable(wrapped)  # what it was raised from counts
    assert store_name("postgresql://app:s3cret@db/outreach") == "postgresql://app:***@db/outreach"
    assert store_name(engine.url) == f"postgresql+psycopg://app:***@127.0.0.1:{engine.url.port}/outreach"


def test_a_wrong_statement_is_not_an_outage(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'outreach.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    assert not store_unreachable(caught.value)
    assert not store_unreachable(ValueError("a bug"))
    calls: list[int] = []

    def wrong() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        when_reachable(wrong, 5.0)
    assert calls == [1]  # not tried again


def test_waiting_for_the_store_tries_again_then_gives_up() -> None:
    engine = nobody_there()
    told: list[tuple[float, int]] = []

    def connect() -> None:
        with engine.connect():
            pass

    with pytest.raises(sa.exc.OperationalError):
        when_reachable(connect, 2.0, lambda exc, pause, attempt: told.append((pause, attempt)))
    assert [attempt for _, attempt in told] == list(range(1, len(told) + 1))
    assert [pause for pause, _ in told[:2]] == [0.1, 0.2]  # doubling from the first pause
    assert list(itertools.islice(waits(30.0), 8)) == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
