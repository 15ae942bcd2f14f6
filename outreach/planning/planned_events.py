"""The timeline events of rows just planned: `delivery.planned` (step, channel, occurrence, and `not_before`
for a row that waits for quiet hours or a holiday to end) or `delivery.suppressed` (step, channel, reason,
and the detail when there is one).

On PostgreSQL one `INSERT ... SELECT` makes them from the ledger rows just written, so the database builds a
million events without a million round trips through Python; elsewhere `planned_event` builds each one. Both
give the same data (a test compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from outreach.store.bulk_copy import is_postgresql
from outreach.store.events import EventRow, add_events, event_row
from outreach.store.ledger import Status


def planned_event(row: Mapping[str, Any], delivery_id: int) -> EventRow:
    """The event of one ledger row just written (a row made by `new_row`)."""
    if row["status"] == Status.QUEUED:
        data = {"step": row["step_id"], "channel": row["channel"], "occurrence": row["occurrence"]}
        if row["not_before"]:
            data["not_before"] = row["not_before"].isoformat(timespec="seconds")
        kind = "delivery.planned"
    else:
        data = {"step": row["step_id"], "channel": row["channel"], "reason": row["reason"]}
        if row["detail"]:
            data["detail"] = row["detail"]
        kind = "delivery.suppressed"
    return event_row(
        row["customer_id"], kind, data, at=row["created_at"], delivery_id=delivery_id, campaign_id=row["campaign_id"]
    )


_FROM_ROWS = """
INSERT INTO events (customer_id, at, kind, delivery_id, campaign_id, data)
SELECT customer_id, created_at,
       CASE WHEN status = 'queued' THEN 'delivery.planned' ELSE 'delivery.suppressed' END,
       id, campaign_id,
       CASE WHEN status = 'queued' THEN
            jsonb_build_object('step', step_id, 'channel', channel, 'occurrence', occurrence)
            || CASE WHEN not_before IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('not_before',
                   to_char(not_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00') END
       ELSE
            jsonb_build_object('step', step_id, 'channel', channel, 'reason', reason)
            || CASE WHEN coalesce(detail, '') = '' THEN '{}'::jsonb ELSE jsonb_build_object('detail', detail) END
       END
FROM deliveries WHERE id = ANY(%(ids)s) ORDER BY id
"""


def add_planned_events(conn: Connection, written: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Write the events of the rows just written: (delivery id, the row as made by `new_row`) pairs."""
    if not written:
        return
    if is_postgresql(conn):
        conn.exec_driver_sql(_FROM_ROWS, {"ids": [delivery_id for delivery_id, _ in written]})
    else:
        add_events(conn, [planned_event(row, delivery_id) for delivery_id, row in written])
