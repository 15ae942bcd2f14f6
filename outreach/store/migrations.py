"""Schema upgrades: the program creates the schema on first use and brings an older one up to date, under a
lock so that several processes starting at once do it once.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.store.schema import (
    attribute_types,
    audit_log,
    bounces,
    campaign_runs,
    campaigns,
    conversations,
    customers,
    deliveries,
    inbound_messages,
    ix_conversations_customer,
    ix_conversations_open,
    ix_customers_email,
    ix_customers_phone,
    ix_customers_wechat,
    ix_customers_whatsapp,
    ix_inbound_untriggered,
    meta,
    metadata,
    planned_contents,
    schedules,
    wechat_push_nonces,
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


def _v4_content_rendered_at_send(conn: Connection) -> None:
    """Planned rows carry a reference to their step's planned content; workers render them when sending."""
    _add_columns(conn, deliveries, ["content_id"])
    planned_contents.create(conn, checkfirst=True)


def _v5_send_started(conn: Connection) -> None:
    """Workers note when each message is handed to its provider. A row an older worker is sending now may
    have gone, so it counts as handed over."""
    _add_columns(conn, deliveries, ["send_started_at"])
    d = deliveries.c
    conn.execute(
        deliveries.update()
        .where(d.status == "sending", d.send_started_at.is_(None))
        .values(send_started_at=d.claimed_at)
    )


def _v6_wechat_push_nonces(conn: Connection) -> None:
    """The (timestamp, nonce) pairs of WeChat pushes taken in the replay window, so none is taken twice."""
    wechat_push_nonces.create(conn, checkfirst=True)


def _v7_untyped_attributes(conn: Connection) -> None:
    """Attributes known from a column imported empty stay open to the type their first values give them."""
    _add_columns(conn, attribute_types, ["untyped"])


MIGRATIONS: list[Migration] = [
    _v2_responses_and_journeys,
    _v3_conversations,
    _v4_content_rendered_at_send,
    _v5_send_started,
    _v6_wechat_push_nonces,
    _v7_untyped_attributes,
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)


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
