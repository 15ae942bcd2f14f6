"""The profile store and delivery ledger: SQLAlchemy Core tables, the engine, and schema upgrades.

SQLite (the embedded default) and PostgreSQL run the same tables. The program creates and upgrades the
schema itself (`migrate`), under a lock so that several processes starting at once do it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

# None is SQL NULL (not JSON null), so `IS NULL` means "no value" on both databases.
Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_clock_offset = timedelta(0)


def utcnow() -> datetime:
    """The engine's clock: every decision about time (claims, schedules, quiet hours, caps) reads it."""
    return datetime.now(UTC) + _clock_offset


def shift_clock(offset: timedelta) -> None:
    """Run the engine's clock `offset` ahead of the real one (for simulations and tests: weeks in seconds)."""
    global _clock_offset
    _clock_offset = offset


meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("email", sa.String(320)),
    # Why an address must not be used (bad format, hard bounce, ...); NULL means usable.
    sa.Column("email_invalid", sa.String(80)),
    sa.Column("phone", sa.String(40)),
    sa.Column("phone_invalid", sa.String(80)),
    sa.Column("whatsapp", sa.String(40)),
    sa.Column("whatsapp_invalid", sa.String(80)),
    sa.Column("wechat_openid", sa.String(64)),
    sa.Column("wechat_invalid", sa.String(80)),
    sa.Column("country", sa.String(2)),
    sa.Column("locale", sa.String(16)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("attributes", Json, nullable=False),
    # Set for a profile made for someone who wrote to the bank from an address no customer has: they get
    # replies (auto-replies, operators'), never campaigns, until the bank imports them.
    sa.Column("provisional_since", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
# Inbound messages are matched to customers by phone and by email (case-insensitively).
ix_customers_phone = sa.Index("ix_customers_phone", customers.c.phone)
ix_customers_email = sa.Index("ix_customers_email_lower", sa.func.lower(customers.c.email))
ix_customers_whatsapp = sa.Index("ix_customers_whatsapp", customers.c.whatsapp)
ix_customers_wechat = sa.Index("ix_customers_wechat", customers.c.wechat_openid)

# The declared type of every profile attribute ever imported: number, boolean, date, string or list.
attribute_types = sa.Table(
    "attribute_types",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(10), nullable=False),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("purpose", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),  # granted | revoked
    sa.Column("source", sa.String(120), nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("delivery_id", sa.BigInteger),
    sa.Column("campaign_id", sa.String(64)),
    sa.Column("data", Json),
    sa.Index("ix_events_customer", "customer_id", "id"),
    sa.Index("ix_events_delivery", "delivery_id"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # campaign:occurrence:step:customer:channel
    sa.Column("idempotency_key", sa.String(400), nullable=False, unique=True),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("occurrence", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(40)),  # why a row is suppressed
    sa.Column("detail", sa.Text),
    sa.Column("address", sa.String(320)),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text),
    sa.Column("html", sa.Text),
    sa.Column("headers", Json),
    sa.Column("sms_segments", sa.Integer),
    # What the step asks of the customer (a survey or keyword answers), so a reply can be read against it.
    sa.Column("expects", Json),
    # The A/B variant of the step this row was written from (None for a step without variants).
    sa.Column("variant", sa.String(32)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("not_before", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("enqueued_at", UTCDateTime),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("claim_token", sa.String(36)),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    # What the customer did after this message: answered it, or opted out in answer to it.
    sa.Column("replied_at", UTCDateTime),
    sa.Column("opted_out_at", UTCDateTime),
    sa.Column("provider", sa.String(20)),
    sa.Column("provider_message_id", sa.String(320)),
    sa.Column("error_code", sa.String(40)),
    sa.Column("error_message", sa.Text),
    # The conversation a reply (an auto-reply, an operator's) belongs to.
    sa.Column("conversation_id", sa.BigInteger),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_deliveries_run_step", "campaign_id", "occurrence", "step_id", "customer_id"),
    sa.Index("ix_deliveries_status", "status", "enqueued_at"),
    sa.Index("ix_deliveries_customer", "customer_id"),
    sa.Index("ix_deliveries_provider_id", "provider_message_id"),
)

# Every message a customer sent us (SMS, email reply, later social), once: the provider's id is unique.
inbound_messages = sa.Table(
    "inbound_messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider_message_id", sa.String(320), nullable=False),
    sa.Column("customer_id", sa.String(64)),
    sa.Column("from_address", sa.String(320), nullable=False),
    sa.Column("to_address", sa.String(320)),
    sa.Column("body", sa.Text, nullable=False),
    # What it was read as: opt_out, opt_in, help, survey, reply
    sa.Column("kind", sa.String(16), nullable=False),
    # The message of ours it answers, when one can be told
    sa.Column("delivery_id", sa.BigInteger),
    sa.Column("received_at", UTCDateTime, nullable=False),
    # The conversation it opened or extended (replies only), and when the inbound triggers had their say.
    sa.Column("conversation_id", sa.BigInteger),
    sa.Column("triggers_done_at", UTCDateTime),
    sa.UniqueConstraint("channel", "provider_message_id", name="uq_inbound_provider_id"),
    sa.Index("ix_inbound_customer", "customer_id", "received_at"),
)

# The scheduler's sweep looks for messages whose inbound triggers have not run: few, and found by this index.
ix_inbound_untriggered = sa.Index(
    "ix_inbound_untriggered",
    inbound_messages.c.received_at,
    postgresql_where=inbound_messages.c.triggers_done_at.is_(None),
    sqlite_where=inbound_messages.c.triggers_done_at.is_(None),
)

# A customer's exchange with the bank: opened by their message, extended by the next ones, answered by an
# operator's reply, closed by an operator (or, idle, by their next message). One open conversation per
# customer at a time.
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # open | closed
    sa.Column("channel", sa.String(16), nullable=False),  # of the customer's latest message
    sa.Column("tags", Json),  # list of tags given by inbound triggers
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("last_inbound_at", UTCDateTime, nullable=False),
    sa.Column("last_outbound_at", UTCDateTime),
    # The customer's oldest message no operator has answered yet; NULL when answered.
    sa.Column("waiting_since", UTCDateTime),
    sa.Column("answered_at", UTCDateTime),
    sa.Column("escalated_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(120)),
    sa.Column("messages", sa.Integer, nullable=False, server_default="0"),  # the customer's
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
ix_conversations_open = sa.Index(
    "ux_conversations_open",
    conversations.c.customer_id,
    unique=True,
    postgresql_where=conversations.c.status == "open",
    sqlite_where=conversations.c.status == "open",
)
ix_conversations_customer = sa.Index("ix_conversations_customer", conversations.c.customer_id, conversations.c.id)

# Email bounces (DSNs), one per delivery and report, so a mailbox read twice counts nothing twice.
bounces = sa.Table(
    "bounces",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("report_id", sa.String(320), nullable=False),  # the DSN's own Message-ID
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # hard | soft
    sa.Column("status", sa.String(16), nullable=False),  # 5.1.1
    sa.Column("diagnostic", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("delivery_id", "report_id", name="uq_bounce_report"),
    sa.Index("ix_bounces_address", "customer_id", "address"),
)

campaign_runs = sa.Table(
    "campaign_runs",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("occurrence", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # planning | planned
    sa.Column("source", sa.Text, nullable=False),  # the campaign file as it was when planned
    sa.Column("source_path", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("planned_at", UTCDateTime),
    # For an occurrence fired by a schedule: the time it was scheduled for (its label says the same).
    sa.Column("scheduled_for", UTCDateTime),
)

# Every operator action (replay, pause, resume, cancel, a consent changed by hand): who, when, with which
# filter and reason, and how many rows it touched.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("target", sa.String(200)),  # a campaign id, a customer id, ...
    sa.Column("filter", Json),
    sa.Column("reason", sa.Text),
    sa.Column("rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", Json),
    sa.Index("ix_audit_at", "at"),
)

# The scheduler's place in each scheduled campaign: every scheduled time up to `watermark` has been dealt
# with (planned, or recorded as missed). `spec` is the schedule it was computed for: a changed schedule
# starts again from the moment it is first seen.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("watermark", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# What workers need to know of a campaign while they send its rows: its throttle, and (for operators) whether
# it is paused or cancelled. Written whenever the campaign is planned.
campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("throttle", sa.String(32)),  # like "50/s"
    sa.Column("frequency_cap", sa.String(32)),  # like "2/7d": at most 2 marketing messages per 7 days
    sa.Column("on_unknown", sa.String(8), nullable=False, server_default="hold"),
    sa.Column("state", sa.String(16), nullable=False, server_default="active"),  # active | paused | cancelled
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


# Each upgrade takes the schema from version N to N+1. A fresh database gets the current tables directly.
Migration = Callable[[Connection], None]


def _add_columns(conn: Connection, table: sa.Table, names: list[str]) -> None:
    """Add the table's columns named, skipping those it has (an earlier step created it as it is now)."""
    existing = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in [n for n in names if n not in existing]:
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))


def _v2_responses_and_journeys(conn: Connection) -> None:
    """What customers do after a message (answers, delivery reports, bounces), and what journeys need
    (variants, scheduled occurrences, per-campaign settings for workers)."""
    _add_columns(conn, deliveries, ["expects", "variant", "delivered_at", "replied_at", "opted_out_at"])
    _add_columns(conn, campaign_runs, ["scheduled_for"])
    _add_columns(conn, customers, ["whatsapp", "whatsapp_invalid", "wechat_openid", "wechat_invalid"])
    for index in (ix_customers_phone, ix_customers_email, ix_customers_whatsapp, ix_customers_wechat):
        index.create(conn, checkfirst=True)
    for table in (inbound_messages, bounces, campaigns, schedules, audit_log):
        table.create(conn, checkfirst=True)


def _v3_conversations(conn: Connection) -> None:
    """Conversations on the social channels, inbound triggers, provisional profiles."""
    _add_columns(conn, customers, ["provisional_since"])
    _add_columns(conn, deliveries, ["conversation_id"])
    _add_columns(conn, inbound_messages, ["conversation_id", "triggers_done_at"])
    # Messages from before the upgrade are not answered by triggers that did not exist when they came.
    conn.execute(
        inbound_messages.update()
        .where(inbound_messages.c.triggers_done_at.is_(None))
        .values(triggers_done_at=inbound_messages.c.received_at)
    )
    conversations.create(conn, checkfirst=True)
    for index in (ix_conversations_open, ix_conversations_customer, ix_inbound_untriggered):
        index.create(conn, checkfirst=True)


MIGRATIONS: list[Migration] = [_v2_responses_and_journeys, _v3_conversations]
SCHEMA_VERSION = 1 + len(MIGRATIONS)


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


def migrate(engine: Engine) -> None:
    """Create the schema, or bring an older one up to date. Safe to call from many processes at once."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
        meta.create(conn, checkfirst=True)
        row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
        if row is None:
            metadata.create_all(conn)
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {version} is newer than this program's ({SCHEMA_VERSION}): upgrade outreach"
            )
        for step in MIGRATIONS[version - 1 :]:
            step(conn)
        if version != SCHEMA_VERSION:
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))


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
