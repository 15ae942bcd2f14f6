"""Exporting a campaign's ledger rows, with what was sent and each row's status history, for regulators and
BI tools: CSV with a header, or JSON Lines.

Rows are streamed (a server-side cursor on PostgreSQL, `yield_per` chunks everywhere) and each chunk's
events are read with one query, so memory stays flat however large the campaign.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.csv_cells import spreadsheet_safe
from outreach.store.database import reading
from outreach.store.schema import deliveries, events

FORMATS = ("csv", "jsonl")
CHUNK = 1000

# The columns of an export, in order; `history` is added last.
COLUMNS = (
    "id", "campaign_id", "occurrence", "step_id", "variant", "customer_id", "channel", "purpose", "status",
    "reason", "detail", "address", "subject", "body", "sms_segments", "attempts", "provider",
    "provider_message_id", "error_code", "error_message", "created_at", "sent_at", "delivered_at", "finished_at",
    "updated_at",
)  # fmt: skip
FIELDS = (*COLUMNS, "history")


def _where(campaign_id: str, occurrence: str | None) -> sa.ColumnElement[bool]:
    condition = deliveries.c.campaign_id == campaign_id
    if occurrence is not None:
        condition = sa.and_(condition, deliveries.c.occurrence == occurrence)
    return condition


def has_rows(conn: Connection, campaign_id: str, occurrence: str | None = None) -> bool:
    """Whether the campaign (occurrence) has any ledger row to export."""
    query = sa.select(deliveries.c.id).where(_where(campaign_id, occurrence)).limit(1)
    return conn.execute(query).first() is not None


def history_entry(kind: str, at: datetime) -> str:
    """One step of a row's status history, compactly: `delivery.sent@2026-11-30T02:00:05Z`."""
    return f"{kind}@{at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='seconds')}Z"


def export_rows(
    engine: Engine, campaign_id: str, occurrence: str | None = None, chunk: int = CHUNK
) -> Iterator[dict[str, Any]]:
    """The campaign's ledger rows in id order, each with `history`: its events as `kind@time`, in order."""
    query = sa.select(*(deliveries.c[name] for name in COLUMNS)).where(_where(campaign_id, occurrence))
    with reading(engine) as rows_conn, reading(engine) as events_conn:
        result = rows_conn.execution_options(stream_results=True, yield_per=chunk).execute(
            query.order_by(deliveries.c.id)
        )
        for partition in result.mappings().partitions(chunk):
            rows = [dict(r) for r in partition]
            histories = _histories(events_conn, [r["id"] for r in rows])
            for row in rows:
                row["history"] = histories.get(row["id"], [])
                yield row


def _histories(conn: Connection, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    query = (
        sa.select(events.c.delivery_id, events.c.kind, events.c.at)
        .where(events.c.delivery_id.in_(ids))
        .order_by(events.c.delivery_id, events.c.at, events.c.id)
    )
    for delivery_id, kind, at in conn.execute(query):
        found[delivery_id].append(history_entry(kind, at))
    return found


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _cell(key: str, value: Any, raw: bool) -> Any:
    text = "; ".join(value) if key == "history" else _text(value)
    return text if raw or not isinstance(text, str) else spreadsheet_safe(text)


def write_csv(rows: Iterator[dict[str, Any]], out: TextIO, raw: bool = False) -> int:
    """CSV with a header row (RFC 4180); the history is one cell, entries separated by `; `. Text cells that a
    spreadsheet would run as formulas get a `'` in front (see `csv_cells`) unless `raw`. Returns the number
    of rows written."""
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({k: _cell(k, v, raw) for k, v in row.items()})
        count += 1
    return count


def write_jsonl(rows: Iterator[dict[str, Any]], out: TextIO, raw: bool = False) -> int:
    """One JSON object per line, the history as a list; values as stored (JSON is never run as a formula, so
    `raw` changes nothing). Returns the number of rows written."""
    count = 0
    for row in rows:
        out.write(json.dumps({k: _text(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        count += 1
    return count


WRITERS = {"csv": write_csv, "jsonl": write_jsonl}
