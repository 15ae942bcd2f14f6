"""Provider delivery reports (Twilio status callbacks) applied to the ledger.

A report may arrive twice, out of order, or before the worker has recorded the send. The ledger only moves
forward (outreach.store.ledger.TRANSITIONS): queued / sending / unknown / dead < sent < delivered |
undelivered | failed. A row the provider reports delivered is therefore settled even while a retry of it
waits in the queue (its claim then finds nothing to take), and a late `sent` never overwrites `delivered`.
Each report that moves a row is one event on the customer's timeline; a report that changes nothing adds
nothing.

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

from outreach.channels.twilio_sms import ReportVerdict, read_status_report
from outreach.customers.profiles import mark_address_invalid, set_consent
from outreach.store.database import utcnow
from outreach.store.events import add_events, event_row
from outreach.store.ledger import TRANSITIONS, DeliveryRow, Status, as_row, move
from outreach.store.schema import deliveries


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
    before = {i: Status(r["status"]) for i, r in rows.items()}
    by_sid = {r["provider_message_id"]: r for r in rows.values() if r["provider_message_id"]}
    outcomes: list[ReportOutcome] = []
    # delivery id -> the reports that moved it, in order (later reports in a batch see the earlier ones)
    applied: dict[int, list[tuple[StatusReport, ReportVerdict]]] = {}
    for report in reports:
        verdict = read_status_report(report.status, report.error_code)
        row = rows.get(report.delivery_id) if report.delivery_id is not None else by_sid.get(report.provider_message_id)
        if row is None:
            outcomes.append(ReportOutcome.UNMATCHED)
            continue
        if verdict.status is None:
            outcomes.append(ReportOutcome.IGNORED)
            continue
        target = Status(verdict.status)
        if target not in TRANSITIONS[Status(row["status"])]:
            outcomes.append(ReportOutcome.UNCHANGED)
            continue
        _settle(row, target, report, now)
        applied.setdefault(row["id"], []).append((report, verdict))
        outcomes.append(ReportOutcome.APPLIED)
    # One move per row from the state it was in to the last one reported; a report that moved the row before
    # the last one (sent, then delivered, in the same batch) is an event of its own.
    groups: dict[tuple[Status, Status], list[int]] = {}
    for delivery_id in applied:
        groups.setdefault((before[delivery_id], Status(rows[delivery_id]["status"])), []).append(delivery_id)
    for (origin, target), ids in groups.items():
        moved = move(
            conn,
            target,
            ids,
            expect=[origin],
            now=now,
            per_row={i: {c: rows[i][c] for c in _SETTLED_COLUMNS} for i in ids},  # type: ignore[literal-required]
            describe=lambda r: _event_data(r, applied[r["id"]][-1][0]),
        )
        for row in moved:
            earlier = applied[row["id"]][:-1]
            add_events(
                conn,
                [
                    event_row(
                        row["customer_id"],
                        f"delivery.{verdict.status}",
                        _event_data(row, report),
                        at=now,
                        delivery_id=row["id"],
                        campaign_id=row["campaign_id"],
                    )
                    for report, verdict in earlier
                ],
            )
            report, verdict = applied[row["id"]][-1]
            _profile_consequences(conn, rows[row["id"]], report, verdict, now)
    return outcomes


_SETTLED_COLUMNS = (
    "provider_message_id",
    "sent_at",
    "delivered_at",
    "finished_at",
    "error_code",
    "error_message",
    "claim_token",
)


def _event_data(row: DeliveryRow, report: StatusReport) -> dict[str, Any]:
    data = {"channel": row["channel"], "provider_id": report.provider_message_id, "status": report.status}
    if report.error_code:
        data["error_code"] = report.error_code
    return data


def _lock_rows(conn: Connection, reports: Sequence[StatusReport]) -> dict[int, DeliveryRow]:
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
    return {r["id"]: as_row(r) for r in conn.execute(query).mappings()}


def _settle(row: DeliveryRow, target: Status, report: StatusReport, now: datetime) -> None:
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


def _profile_consequences(
    conn: Connection, row: DeliveryRow, report: StatusReport, verdict: ReportVerdict, now: datetime
) -> None:
    """A carrier's verdict on the recipient: they blocked us, or the number cannot receive."""
    if verdict.recipient_opted_out:
        for purpose in ("marketing", "service"):
            set_consent(
                conn, row["customer_id"], row["channel"], purpose, "revoked", "provider:recipient-opted-out", at=now
            )
    elif verdict.address_invalid:
        mark_address_invalid(conn, row, f"provider error {report.error_code}", now)
