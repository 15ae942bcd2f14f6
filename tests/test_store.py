"""The store creates and upgrades its own schema, once, even when many processes start together."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach import db
from outreach.db import make_engine, meta, migrate, open_store


def version(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one()
    engine.dispose()
    return int(value)


def test_schema_is_created_once_by_many_starters(store_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_store(store_url).dispose()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert version(store_url) == db.SCHEMA_VERSION
    engine = make_engine(store_url)
    assert {"customers", "consents", "events", "deliveries", "campaign_runs", "attribute_types", "meta"} <= set(
        sa.inspect(engine).get_table_names()
    )
    engine.dispose()


def test_an_older_schema_is_upgraded_in_order(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).dispose()
    applied: list[str] = []

    def add_column(conn: Connection) -> None:
        applied.append("add column")
        conn.execute(sa.text("ALTER TABLE customers ADD COLUMN nickname VARCHAR(40)"))

    def add_index(conn: Connection) -> None:
        applied.append("add index")
        conn.execute(sa.text("CREATE INDEX ix_customers_nickname ON customers (nickname)"))

    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, add_column, add_index])
    monkeypatch.setattr(db, "SCHEMA_VERSION", db.SCHEMA_VERSION + 2)
    engine = make_engine(store_url)
    migrate(engine)
    migrate(engine)  # already current: nothing applied twice
    assert applied == ["add column", "add index"]
    assert version(store_url) == db.SCHEMA_VERSION
    assert "nickname" in {c["name"] for c in sa.inspect(engine).get_columns("customers")}
    engine.dispose()


def test_a_newer_schema_is_refused(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).dispose()
    monkeypatch.setattr(db, "SCHEMA_VERSION", db.SCHEMA_VERSION - 1)
    with pytest.raises(RuntimeError, match="newer than this program"):
        migrate(make_engine(store_url))


def test_a_version_1_store_gains_the_response_columns_and_tables(store_url: str) -> None:
    """A store created before responses existed (schema 1) is upgraded in place, its rows kept."""
    engine = make_engine(store_url)
    with engine.begin() as conn:
        v1 = sa.MetaData()
        for table in db.metadata.sorted_tables:
            if table.name in {"inbound_messages", "bounces", "campaigns", "schedules", "audit_log"}:
                continue
            dropped = {
                "deliveries": {"expects", "variant", "delivered_at", "replied_at", "opted_out_at"},
                "campaign_runs": {"scheduled_for"},
                "customers": {"whatsapp", "whatsapp_invalid", "wechat_openid", "wechat_invalid"},
            }.get(table.name, set())
            sa.Table(
                table.name,
                v1,
                *(c._copy() for c in table.columns if c.name not in dropped),
                *(
                    sa.Index(i.name, *(c.name for c in i.columns))
                    for i in table.indexes
                    if not {c.name for c in i.columns} & dropped
                ),
            )
        v1.create_all(conn)
        conn.execute(meta.insert().values(key="schema_version", value="1"))
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('kept', 'yes')"))
    migrate(engine)
    inspector = sa.inspect(engine)
    assert {"expects", "variant", "delivered_at", "replied_at", "opted_out_at"} <= {
        c["name"] for c in inspector.get_columns("deliveries")
    }
    assert "scheduled_for" in {c["name"] for c in inspector.get_columns("campaign_runs")}
    assert {"whatsapp", "wechat_openid"} <= {c["name"] for c in inspector.get_columns("customers")}
    assert {"inbound_messages", "bounces", "campaigns", "schedules", "audit_log"} <= set(inspector.get_table_names())
    assert version(store_url) == db.SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'kept'")).scalar_one() == "yes"
    engine.dispose()
