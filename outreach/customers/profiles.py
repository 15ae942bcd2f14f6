"""Customer profiles: reading them, their consents, and the event timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.store.database import insert_ignoring_duplicates, utcnow
from outreach.store.events import add_events, event_row
from outreach.store.fields import ADDRESS_FIELDS, AttributeCatalog, AttributeType, invalid_reason
from outreach.store.rows import ConsentRow, CustomerRow, TimelineEvent, consent_row, customer_row, timeline_event
from outreach.store.schema import attribute_types, consents, customers, events

ConsentStatus = Literal["granted", "revoked"]
# A revocation from one of these sources came from the customer (or their carrier on their behalf):
# a data import cannot undo it, only the customer opting back in can.
IMPORT_SOURCE_PREFIX = "import"


def consent_status(conn: Connection, customer_id: str, channel: str, purpose: str) -> str | None:
    return conn.execute(
        sa.select(consents.c.status).where(
            consents.c.customer_id == customer_id, consents.c.channel == channel, consents.c.purpose == purpose
        )
    ).scalar()


def consent_block_reason(purpose: str, status: str | None) -> str | None:
    """Why a customer may not be contacted for `purpose` given their consent status; None if they may.

    Marketing needs consent given explicitly (unknown counts as no); service messages go unless the
    customer revoked them.
    """
    if status == "revoked":
        return "opted_out"
    if purpose == "marketing" and status != "granted":
        return "no_consent"
    return None


def get_customer(conn: Connection, customer_id: str) -> CustomerRow | None:
    row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().first()
    return customer_row(row) if row else None


def customer_consents(conn: Connection, customer_id: str) -> list[ConsentRow]:
    rows = conn.execute(
        sa.select(consents)
        .where(consents.c.customer_id == customer_id)
        .order_by(consents.c.channel, consents.c.purpose)
    ).mappings()
    return [consent_row(r) for r in rows]


def consent_map(
    conn: Connection, customer_ids: Iterable[str], channels: Iterable[str], purpose: str
) -> dict[tuple[str, str], str]:
    """(customer_id, channel) -> consent status for `purpose`, for many customers in one query."""
    ids = list(customer_ids)
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(consents.c.customer_id, consents.c.channel, consents.c.status).where(
            consents.c.customer_id.in_(ids),
            consents.c.channel.in_(list(channels)),
            consents.c.purpose == purpose,
        )
    )
    return {(r.customer_id, r.channel): r.status for r in rows}


def set_consent(
    conn: Connection,
    customer_id: str,
    channel: str,
    purpose: str,
    status: ConsentStatus,
    source: str,
    *,
    at: datetime | None = None,
    delivery_id: int | None = None,
    campaign_id: str | None = None,
) -> bool:
    """Record a consent change and its event; returns False when the status was already that.

    `delivery_id` / `campaign_id` name the message the change answered, when there is one."""
    at = at or utcnow()
    current = conn.execute(
        sa.select(consents.c.status).where(
            consents.c.customer_id == customer_id,
            consents.c.channel == channel,
            consents.c.purpose == purpose,
        )
    ).scalar()
    if current == status:
        return False
    values = {"status": status, "source": source, "changed_at": at}
    if current is None:
        conn.execute(consents.insert().values(customer_id=customer_id, channel=channel, purpose=purpose, **values))
    else:
        conn.execute(
            consents.update()
            .where(
                consents.c.customer_id == customer_id,
                consents.c.channel == channel,
                consents.c.purpose == purpose,
            )
            .values(**values)
        )
    add_events(
        conn,
        [
            event_row(
                customer_id,
                f"consent.{status}",
                {"channel": channel, "purpose": purpose, "source": source},
                at=at,
                delivery_id=delivery_id,
                campaign_id=campaign_id,
            )
        ],
    )
    return True


def timeline(conn: Connection, customer_id: str, limit: int | None = None) -> list[TimelineEvent]:
    query = sa.select(events).where(events.c.customer_id == customer_id).order_by(events.c.at, events.c.id)
    if limit:
        query = query.limit(limit)
    return [timeline_event(r) for r in conn.execute(query).mappings()]


def attribute_catalog(conn: Connection) -> AttributeCatalog:
    """Every known attribute's type, and which of them no value has typed yet."""
    rows = conn.execute(sa.select(attribute_types)).all()
    return AttributeCatalog({r.name: r.type for r in rows}, frozenset(r.name for r in rows if r.untyped))


def declare_attributes(
    conn: Connection, types: Mapping[str, AttributeType], *, untyped: Iterable[str] = ()
) -> dict[str, AttributeType]:
    """Record the attributes' types: new ones are added, and one known only from an empty column takes the
    type given; a settled type is kept. Those in `untyped` are recorded as still open. Returns the types
    recorded now (the new and the newly typed)."""
    if not types:
        return {}
    current = attribute_catalog(conn)
    still_open = set(untyped)
    recorded: dict[str, AttributeType] = {}
    for name, kind in types.items():
        if name in current and name not in current.untyped:
            continue
        is_open = name in still_open
        if name in current:
            if is_open:
                continue  # known, and still without a type
            conn.execute(attribute_types.update().where(attribute_types.c.name == name).values(type=kind, untyped=None))
        else:
            conn.execute(
                insert_ignoring_duplicates(conn, attribute_types).values(name=name, type=kind, untyped=is_open or None)
            )
        recorded[name] = kind
    return recorded


def change_attributes(
    conn: Connection,
    customer_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    now: datetime,
) -> bool:
    """Read a profile's attributes under a row lock, let `change` return the new ones (None: no change), and
    write them back; so two changes at once (an answer, a tag) never lose one. False if nothing changed."""
    current = conn.execute(
        sa.select(customers.c.attributes).where(customers.c.id == customer_id).with_for_update()
    ).first()
    if current is None:
        return False
    changed = change(dict(current.attributes or {}))
    if changed is None:
        return False
    conn.execute(customers.update().where(customers.c.id == customer_id).values(attributes=changed, updated_at=now))
    return True


def with_list_values(attributes: dict[str, Any], name: str, values: Iterable[str]) -> dict[str, Any] | None:
    """`attributes` with `values` added to its list `name` (for `change_attributes`); None when they are all
    there already, or `name` holds something other than a list."""
    current = attributes.get(name) or []
    if not isinstance(current, list):
        return None
    new = [v for v in dict.fromkeys(values) if v not in current]
    return {**attributes, name: [*current, *new]} if new else None


def mark_address_invalid(conn: Connection, row: Mapping[str, Any], why: str, now: datetime) -> None:
    """The provider says this address cannot receive: flag it on the profile (if it is still the profile's)."""
    columns = ADDRESS_FIELDS.get(row["channel"])
    if columns is None:
        return
    address_column, flag_column = columns
    result = conn.execute(
        customers.update()
        .where(customers.c.id == row["customer_id"], customers.c[address_column] == row["address"])
        .values({flag_column: invalid_reason(why), "updated_at": now})
    )
    if result.rowcount:
        add_events(
            conn,
            [
                event_row(
                    row["customer_id"],
                    "address.invalid",
                    {"channel": row["channel"], "address": row["address"], "why": why},
                    at=now,
                    delivery_id=row["id"],
                    campaign_id=row["campaign_id"],
                )
            ],
        )
