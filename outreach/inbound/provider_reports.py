"""Provider delivery reports (Twilio status callbacks) applied to the ledger.

A report may arrive twice, out of order, or before the worker has recorded the send. The ledger only moves
forward: queued / sending / unknown / dead < sent < delivered | undelivered | failed. A row the provider
reports delivered is therefore settled even while a retry of it waits in the queue (its claim then finds
nothing to take), and a late `sent` never overwrites `delivered`. Each change is one event on the customer's
timeline; a report that changes nothing adds nothing.

Reports are applied many at a time (`apply_status_reports`), in one transaction, with the rows locked in id
order so that several webhook processes never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.customers.profiles import set_consent
from outreach.store.database import utcnow
from outreach.store.events import EventRow, add_events, event_row
from outreach.store.ledger import Status, mark_address_invalid
from outreach.store.schema import deliveries

# Twilio's MessageStatus values that move a row; the others (queued, accepted, sending, scheduled, ...) say
# nothing the ledger does not know.
TWILIO_STATUSES = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,  # WhatsApp: read implies delivered
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}
_RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 0,
    Status.UNKNOWN: 0,
    Status.DEAD: 0,
    Status.SENT: 1,
    Status.DELIVERED: 2,
    Status.UNDELIVERED: 2,
    Status.FAILED: 2,
}
# Error codes in a failed / undelivered report that say the recipient blocked us (Twilio 21610)...
OPTED_OUT_CODES = frozenset({"21610"})
# ... or that the number cannot receive messages (invalid, unknown handset, landline, not mobile).
ADDRESS_INVALID_CODES = frozenset({"21211", "21614", "30005", "30006"})


class ReportOutcome(StrEnum):
    APPLIED = "applied"  # the row moved
    UNCHANGED = "unchanged"  # a duplicate, or older news than the row already has
    IGNORED = "ignored"  # a status the ledger does not track (queued, accepted, ...)
    UNMATCHED = "unmatched"  # no ledger row has this id


@dataclass(frozen=True)
class StatusReport:
    """One delivery report as the provider sent it."""

    provider_message_id: str
    status: str  # the provider's word, e.g. Twilio's MessageStatus
    error_code: str | None = None
    # Our ledger id, carried in the callback URL we gave the provider; None for reports without it.
    delivery_id: int | None = None


def apply_status_reports(engine: Engine, reports: Sequence[StatusReport]) -> list[ReportOutcome]:
    """Apply many reports in one transaction; one outcome per report, in order."""
    with engine.begin() as conn:
        return apply_in(conn, reports)


def apply_in(conn: Connection, reports: Sequence[StatusReport]) -> list[ReportOutcome]:
    now = utcnow()
    rows = _lock_rows(conn, reports)
    by_sid = {r["provider_message_id"]: r for r in rows.values() if r["provider_message_id"]}
    outcomes: list[ReportOutcome] = []
    changed: dict[int, dict[str, Any]] = {}
    new_events: list[EventRow] = []
    for report in reports:
        target = TWILIO_STATUSES.get(report.status.lower())
        row = rows.get(report.delivery_id) if report.delivery_id is not None else by_sid.get(report.provider_message_id)
        if row is None:
            outcomes.append(ReportOutcome.UNMATCHED)
            continue
        if target is None:
            outcomes.append(ReportOutcome.IGNORED)
            continue
        if _RANK.get(Status(row["status"]), 3) >= _RANK[target]:
            outcomes.append(ReportOutcome.UNCHANGED)
            continue
        _move(row, target, report, now)
        changed[row["id"]] = row
        data = {"channel": row["channel"], "provider_id": report.provider_message_id, "status": report.status}
        if report.error_code:
            data["error_code"] = report.error_code
        new_events.append(
            event_row(
                row["customer_id"],
                f"delivery.{target}",
                data,
                at=now,
                delivery_id=row["id"],
                campaign_id=row["campaign_id"],
            )
        )
        outcomes.append(ReportOutcome.APPLIED)
    if changed:
        _write(conn, list(changed.values()), now)
        add_events(conn, new_events)
        for row in changed.values():
            _profile_consequences(conn, row, now)
    return outcomes


def _lock_rows(conn: Connection, reports: Sequence[StatusReport]) -> dict[int, dict[str, Any]]:
    d = deliveries.c
    ids = sorted({r.delivery_id for r in reports if r.delivery_id is not None})
    sids = sorted({r.provider_message_id for r in reports if r.delivery_id is None})
    matches = []
    if ids:
        matches.append(d.id.in_(ids))
    if sids:
        matches.append(d.provider_message_id.in_(sids))
    if not matches:
        return {}
    query = sa.select(deliveries).where(sa.or_(*matches)).order_by(d.id).with_for_update()
    return {r["id"]: dict(r) for r in conn.execute(query).mappings()}


def _move(row: dict[str, Any], target: Status, report: StatusReport, now: datetime) -> None:
    """Change the row in memory (later reports in the same batch see the new state)."""
    row["status"] = target
    row["provider_message_id"] = row["provider_message_id"] or report.provider_message_id
    row["sent_at"] = row["sent_at"] or now
    row["claim_token"] = None  # a worker still holding the row must not record over the provider's word
    if target is Status.DELIVERED:
        row["delivered_at"] = now
    if target in (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED):
        row["finished_at"] = now
    if target in (Status.UNDELIVERED, Status.FAILED):
        row["error_code"] = report.error_code
        row["error_message"] = f"provider reported {report.status}" + (
            f" (error {report.error_code})" if report.error_code else ""
        )
    row["_report"] = report


def _write(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    d = deliveries.c
    statement = (
        deliveries.update()
        .where(d.id == sa.bindparam("b_id"))
        .values(
            status=sa.bindparam("b_status"),
            provider_message_id=sa.bindparam("b_sid"),
            sent_at=sa.bindparam("b_sent_at"),
            delivered_at=sa.bindparam("b_delivered_at"),
            finished_at=sa.bindparam("b_finished_at"),
            error_code=sa.bindparam("b_error_code"),
            error_message=sa.bindparam("b_error_message"),
            claim_token=sa.bindparam("b_claim_token"),
            updated_at=now,
        )
    )
    conn.execute(
        statement,
        [
            {
                "b_id": r["id"],
                "b_status": str(r["status"]),
                "b_sid": r["provider_message_id"],
                "b_sent_at": r["sent_at"],
                "b_delivered_at": r["delivered_at"],
                "b_finished_at": r["finished_at"],
                "b_error_code": r["error_code"],
                "b_error_message": r["error_message"],
                "b_claim_token": r["claim_token"],
            }
            for r in rows
        ],
    )


def _profile_consequences(conn: Connection, row: dict[str, Any], now: datetime) -> None:
    """A carrier's verdict on the recipient: they blocked us, or the number cannot receive."""
    report: StatusReport = row["_report"]
    if row["status"] not in (Status.UNDELIVERED, Status.FAILED) or not report.error_code:
        return
    if report.error_code in OPTED_OUT_CODES:
        for purpose in ("marketing", "service"):
            set_consent(
                conn, row["customer_id"], row["channel"], purpose, "revoked", "provider:recipient-opted-out", at=now
            )
    elif report.error_code in ADDRESS_INVALID_CODES:
        mark_address_invalid(conn, row, f"provider error {report.error_code}", now)
