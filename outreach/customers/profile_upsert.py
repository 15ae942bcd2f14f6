"""Writing imported customers: upsert by id, merge attributes, apply consent changes, record events.

An empty cell keeps the stored value; an address given again keeps the verdict a bounce or carrier gave it;
a consent the customer withdrew themselves is never re-granted by an import. A chunk's known customers and
consents are read by id; on PostgreSQL its new rows (customers, consents, events) are copied in with `COPY`
(store/bulk_copy), elsewhere inserted with executemany.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from outreach.core.errors import Problem
from outreach.customers.profiles import IMPORT_SOURCE_PREFIX
from outreach.store.bulk_copy import JsonText, copy_rows, copy_update, is_postgresql
from outreach.store.database import utcnow
from outreach.store.events import EventRow, add_events, event_row
from outreach.store.fields import ADDRESS_FIELDS, AttributeType, invalid_reason
from outreach.store.schema import consents, customers, events


@dataclass
class ImportSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    consents_changed: int = 0
    # Grants in the file that were not applied because the customer had opted out themselves.
    consents_kept_revoked: int = 0
    invalid_contacts: list[Problem] = field(default_factory=list)
    new_attributes: dict[str, AttributeType] = field(default_factory=dict)
    # The new attributes that no row gave a value and no type was declared for: strings until values type them.
    untyped_attributes: list[str] = field(default_factory=list)
    # (provisional profile, customer) pairs: strangers who wrote to us, now known by an imported address.
    adopted: list[tuple[str, str]] = field(default_factory=list)
    # (address column, address as compared) -> the customers who have it, when more than one does
    shared_addresses: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # customer id -> its line in the file, for the customers of `shared_addresses` that the file has
    shared_lines: dict[str, int] = field(default_factory=dict)

    def shared_counts(self) -> dict[str, int]:
        """Shared addresses per address column."""
        counts: dict[str, int] = {}
        for column, _address in self.shared_addresses:
            counts[column] = counts.get(column, 0) + 1
        return counts


@dataclass(slots=True)
class CustomerRecord:
    """One checked row of an import file."""

    line: int
    id: str
    core: dict[str, str]
    # address column -> why its value is unusable (kept only with --allow-invalid-contacts)
    invalid: dict[str, str]
    # (channel, purpose) -> granted | revoked
    consents: dict[tuple[str, str], str]
    attributes: dict[str, Any]


def write_chunk(
    conn: Connection, chunk: list[CustomerRecord], source: str, summary: ImportSummary, *, known: bool = True
) -> None:
    """Upsert a chunk of records: new customers inserted, known ones merged, consent changes and events.

    `known=False` says that no record of the chunk can be in the store yet (the import began on an empty
    store and gives each id once), so the lookups are skipped: on PostgreSQL they would scan what this
    transaction has written so far, for want of statistics, once per chunk."""
    now = utcnow()
    ids = [r.id for r in chunk]
    copying = is_postgresql(conn)
    existing: dict[str, dict[str, Any]] = {}
    stored_consents: dict[tuple[str, str, str], tuple[str, str]] = {}
    if known:
        existing = {
            row["id"]: dict(row)
            for row in conn.execute(sa.select(customers).where(_among(customers.c.id, ids, copying))).mappings()
        }
        stored_consents = {
            (r.customer_id, r.channel, r.purpose): (r.status, r.source)
            for r in conn.execute(
                sa.select(
                    consents.c.customer_id, consents.c.channel, consents.c.purpose, consents.c.status, consents.c.source
                ).where(_among(consents.c.customer_id, ids, copying))
            )
        }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    new_events: list[EventRow] = []
    created = _event_data({"source": source}, copying)
    consent_data = {
        (channel, purpose): _event_data({"channel": channel, "purpose": purpose, "source": source}, copying)
        for channel, purpose in {key for r in chunk for key in r.consents}
    }
    consent_inserts: list[dict[str, Any]] = []
    consent_updates: list[dict[str, Any]] = []
    for record in chunk:
        old = existing.get(record.id)
        row = _merged_row(old, record, now)
        if old is None:
            inserts.append(row)
            summary.created += 1
            new_events.append(_event(record.id, "profile.created", created, now))
        else:
            changed = sorted(k for k in row if k not in ("updated_at", "created_at") and row[k] != old.get(k))
            if changed:
                updates.append({"b_id": record.id, **row})
                summary.updated += 1
                new_events.append(
                    event_row(record.id, "profile.updated", {"source": source, "fields": changed}, at=now)
                )
            else:
                summary.unchanged += 1
        _consent_changes(
            record, stored_consents, source, now, summary, new_events, consent_inserts, consent_updates, consent_data
        )
    if inserts:
        _insert(conn, customers, inserts, copying)
    if updates and copying:
        copy_update(
            conn, customers, [{k: v for k, v in u.items() if k not in ("b_id", "created_at")} for u in updates], ("id",)
        )
    elif updates:
        conn.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(c) for c in updates[0] if c not in ("b_id", "id", "created_at")}),
            [{k: v for k, v in u.items() if k not in ("id", "created_at")} for u in updates],
        )
    if consent_inserts:
        _insert(conn, consents, consent_inserts, copying)
    if consent_updates and copying:
        copy_update(
            conn,
            consents,
            [{"customer_id": u["b_customer_id"], "channel": u["b_channel"], "purpose": u["b_purpose"],
              "status": u["status"], "source": u["source"], "changed_at": u["changed_at"]} for u in consent_updates],
            ("customer_id", "channel", "purpose"),
        )  # fmt: skip
    elif consent_updates:
        conn.execute(
            consents.update()
            .where(
                consents.c.customer_id == sa.bindparam("b_customer_id"),
                consents.c.channel == sa.bindparam("b_channel"),
                consents.c.purpose == sa.bindparam("b_purpose"),
            )
            .values(
                status=sa.bindparam("status"),
                source=sa.bindparam("source"),
                changed_at=sa.bindparam("changed_at"),
            ),
            consent_updates,
        )
    if copying:
        copy_rows(conn, events, new_events)
    else:
        add_events(conn, new_events)


def _event_data(data: dict[str, Any], copying: bool) -> Any:
    """Event data the same for many rows: encoded once when the rows are copied."""
    if copying:
        return JsonText(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return data


def _event(customer_id: str, kind: str, data: Any, now: datetime) -> EventRow:
    # event_row copies its data into a new dict; the same data (or its encoding) serves every row here
    return {"customer_id": customer_id, "kind": kind, "at": now, "delivery_id": None, "campaign_id": None, "data": data}


def _among(column: sa.Column[str], ids: list[str], copying: bool) -> sa.ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL as `= ANY(array)`, one parameter whatever the chunk's size."""
    if copying:
        return column == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.String)))
    return column.in_(ids)


def _insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], copying: bool) -> None:
    if copying:
        copy_rows(conn, table, rows)
    else:
        conn.execute(table.insert(), rows)


ADDRESS_COLUMNS = tuple(column for column, _ in ADDRESS_FIELDS.values())
ADDRESS_FLAGS = dict(ADDRESS_FIELDS.values())


def _merged_row(old: dict[str, Any] | None, record: CustomerRecord, now: Any) -> dict[str, Any]:
    """The customer row after this record: empty cells keep stored values, attributes merge."""
    kept = ("name", *ADDRESS_COLUMNS, "country", "locale", "timezone")
    row: dict[str, Any] = {c: (old or {}).get(c) for c in kept}
    row.update(record.core)
    row["id"] = record.id
    for kind, flag in ADDRESS_FLAGS.items():
        new_flag = record.invalid.get(kind)
        if kind not in record.core:
            row[flag] = (old or {}).get(flag)
        elif new_flag is not None:
            row[flag] = invalid_reason(new_flag)
        elif old is not None and old.get(kind) == row[kind]:
            row[flag] = old.get(flag)  # same address again: a bounce or carrier verdict on it stands
        else:
            row[flag] = None
    row["attributes"] = {**((old or {}).get("attributes") or {}), **record.attributes}
    row["created_at"] = (old or {}).get("created_at") or now
    row["updated_at"] = now
    return row


def _consent_changes(
    record: CustomerRecord,
    stored: dict[tuple[str, str, str], tuple[str, str]],
    source: str,
    now: Any,
    summary: ImportSummary,
    new_events: list[EventRow],
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    event_data: dict[tuple[str, str], Any],
) -> None:
    for (channel, purpose), status in record.consents.items():
        current = stored.get((record.id, channel, purpose))
        if current is not None and current[0] == status:
            continue
        if current is not None and status == "granted" and not current[1].startswith(IMPORT_SOURCE_PREFIX):
            summary.consents_kept_revoked += 1
            continue
        values = {"status": status, "source": source, "changed_at": now}
        if current is None:
            inserts.append({"customer_id": record.id, "channel": channel, "purpose": purpose, **values})
        else:
            updates.append({"b_customer_id": record.id, "b_channel": channel, "b_purpose": purpose, **values})
        summary.consents_changed += 1
        new_events.append(_event(record.id, f"consent.{status}", event_data[channel, purpose], now))
