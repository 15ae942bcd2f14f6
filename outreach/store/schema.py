"""The tables of the profile store and delivery ledger (SQLAlchemy Core), and the column types they use.

SQLite (the embedded default) and PostgreSQL run the same tables; `migrations` creates and upgrades them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from outreach.store.fields import INVALID_REASON_LENGTH

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
    sa.Column("email_invalid", sa.String(INVALID_REASON_LENGTH)),
    sa.Column("phone", sa.String(40)),
    sa.Column("phone_invalid", sa.String(INVALID_REASON_LENGTH)),
    sa.Column("whatsapp", sa.String(40)),
    sa.Column("whatsapp_invalid", sa.String(INVALID_REASON_LENGTH)),
    sa.Column("wechat_openid", sa.String(64)),
    sa.Column("wechat_invalid", sa.String(INVALID_REASON_LENGTH)),
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
    # True: known only from a column imported empty, without a type hint; typed by its first values, a hint
    # or a survey's `expects:`. NULL or false: the type is settled.
    sa.Column("untyped", sa.Boolean),
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
    # When the claiming worker handed the message to its provider: a `sending` row without it was never
    # handed over (the sweep queues it again), one with it may have gone (the sweep makes it `unknown`).
    sa.Column("send_started_at", UTCDateTime),
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
    # The planned content (planned_contents) a worker renders this row from when it sends it; the rendered
    # subject, body, html and headers are written to the row before the message goes.
    sa.Column("content_id", sa.BigInteger),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_deliveries_run_step", "campaign_id", "occurrence", "step_id", "customer_id"),
    sa.Index("ix_deliveries_status", "status", "enqueued_at"),
    sa.Index("ix_deliveries_customer", "customer_id"),
    sa.Index("ix_deliveries_provider_id", "provider_message_id"),
)

# The templates of one step as a run planned them (each variant, channel and translation), kept so that the
# workers render every row from exactly what was planned, whatever happens to the campaign's files later.
# One row per distinct content: `digest` is the sha256 of the payload.
planned_contents = sa.Table(
    "planned_contents",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("campaign_id", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
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

# The WeChat pushes taken in the replay window (`outreach.web.push_replay`), when the broker is not Redis: one
# row per (timestamp, nonce), with the digest of what was pushed under it, kept until the pair is out of the
# window (`expires_at`) and then deleted.
wechat_push_nonces = sa.Table(
    "wechat_push_nonces",
    metadata,
    sa.Column("timestamp", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_wechat_push_nonces_expires", "expires_at"),
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
    # hard | soft (a bounce: Action failed) | delayed | relayed | expanded (noted, no bounce)
    sa.Column("kind", sa.String(8), nullable=False),
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
