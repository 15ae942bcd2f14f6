"""The store creates and upgrades its own schema, once, even when many processes start together."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.customers.profiles import attribute_catalog
from outreach.store import migrations, schema
from outreach.store.database import make_engine, open_store
from outreach.store.migrations import migrate
from outreach.store.schema import inbound_messages, meta


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
    assert version(store_url) == migrations.SCHEMA_VERSION
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

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_column, add_index])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", migrations.SCHEMA_VERSION + 2)
    engine = make_engine(store_url)
    migrate(engine)
    migrate(engine)  # already current: nothing applied twice
    assert applied == ["add column", "add index"]
    assert version(store_url) == migrations.SCHEMA_VERSION
    assert "nickname" in {c["name"] for c in sa.inspect(engine).get_columns("customers")}
    engine.dispose()


def test_a_newer_schema_is_refused(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).dispose()
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", migrations.SCHEMA_VERSION - 1)
    with pytest.raises(RuntimeError, match="newer than this program"):
        migrate(make_engine(store_url))


V3_TABLES = {"conversations"}
V3_COLUMNS = {
    "customers": {"provisional_since"},
    "deliveries": {"conversation_id"},
    "inbound_messages": {"conversation_id", "triggers_done_at"},
}


def create_old_store(conn: Connection, version: int, skip: set[str], dropped: dict[str, set[str]]) -> None:
    """The current tables without those and the columns (and their indexes) a later version added."""
    old = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name in skip:
            continue
        gone = dropped.get(table.name, set())
        sa.Table(
            table.name,
            old,
            *(c._copy() for c in table.columns if c.name not in gone),
            *(
                sa.Index(i.name, *(c.name for c in i.columns))
                for i in table.indexes
                if not {c.name for c in i.columns} & gone and i.columns
            ),
        )
    old.create_all(conn)
    conn.execute(meta.insert().values(key="schema_version", value=str(version)))


def test_a_version_1_store_gains_the_response_columns_and_tables(store_url: str) -> None:
    """A store created before responses existed (schema 1) is upgraded in place, its rows kept."""
    engine = make_engine(store_url)
    with engine.begin() as conn:
        v2_columns = {
            "deliveries": {"expects", "variant", "delivered_at", "replied_at", "opted_out_at"},
            "campaign_runs": {"scheduled_for"},
            "customers": {"whatsapp", "whatsapp_invalid", "wechat_openid", "wechat_invalid"},
        }
        names = {*v2_columns, *V3_COLUMNS}
        dropped = {name: v2_columns.get(name, set()) | V3_COLUMNS.get(name, set()) for name in names}
        v2_tables = {"inbound_messages", "bounces", "campaigns", "schedules", "audit_log"}
        create_old_store(conn, 1, v2_tables | V3_TABLES, dropped)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('kept', 'yes')"))
    migrate(engine)
    inspector = sa.inspect(engine)
    assert {"expects", "variant", "delivered_at", "replied_at", "opted_out_at", "conversation_id"} <= {
        c["name"] for c in inspector.get_columns("deliveries")
    }
    assert "scheduled_for" in {c["name"] for c in inspector.get_columns("campaign_runs")}
    assert {"whatsapp", "wechat_openid", "provisional_since"} <= {c["name"] for c in inspector.get_columns("customers")}
    assert {*v2_tables, *V3_TABLES} <= set(inspector.get_table_names())
    assert version(store_url) == migrations.SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'kept'")).scalar_one() == "yes"
    engine.dispose()


def test_a_version_2_store_gains_conversations_and_its_old_messages_trigger_nothing(store_url: str) -> None:
    engine = make_engine(store_url)
    received = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    with engine.begin() as conn:
        create_old_store(conn, 2, V3_TABLES, V3_COLUMNS)
        conn.execute(
            sa.text(
                "INSERT INTO inbound_messages (channel, provider_message_id, from_address, body, kind, received_at)"
                " VALUES ('sms', 'SM1', '+14155550100', 'complaint', 'reply', :at)"
            ),
            {"at": received if conn.dialect.name == "postgresql" else received.replace(tzinfo=None)},
        )
    migrate(engine)
    assert version(store_url) == migrations.SCHEMA_VERSION
    with engine.connect() as conn:
        [row] = conn.execute(sa.select(inbound_messages)).mappings().all()
    assert row["triggers_done_at"] == received and row["conversation_id"] is None
    assert "conversations" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_a_version_4_store_gains_send_started_at_and_the_table_of_wechat_push_nonces(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.begin() as conn:
        create_old_store(conn, 4, {"wechat_push_nonces"}, {"deliveries": {"send_started_at"}})
    migrate(engine)
    assert version(store_url) == migrations.SCHEMA_VERSION
    inspector = sa.inspect(engine)
    assert "send_started_at" in {c["name"] for c in inspector.get_columns("deliveries")}
    assert "wechat_push_nonces" in inspector.get_table_names()
    assert inspector.get_pk_constraint("wechat_push_nonces")["constrained_columns"] == ["timestamp", "nonce"]
    engine.dispose()


def test_a_version_6_store_gains_untyped_attributes_and_its_types_stay_settled(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.begin() as conn:
        create_old_store(conn, 6, set(), {"attribute_types": {"untyped"}})
        conn.execute(sa.text("INSERT INTO attribute_types (name, type) VALUES ('nps', 'string')"))
    migrate(engine)
    assert version(store_url) == migrations.SCHEMA_VERSION
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    assert (dict(catalog), catalog.untyped) == ({"nps": "string"}, frozenset())
    engine.dispose()
