"""Filing what comes back to the bank's mailbox: bounces onto the ledger and the profile, replies onto the
timeline.

A bounce (RFC 3464 DSN) is matched to its ledger row through the address it was sent to, when
`email_return_path` gives every message its own (VERP: `bounces+ID.HASH@domain`), else through the original
Message-ID it quotes, which names the row (`<outreach.ID.HASH@domain>`). The report's `Action` is read as
RFC 3464 means it: only `failed` is a bounce. A failure with a permanent status (5.x.x) fails the row and
marks the address invalid; one the MTA gave up on after temporary errors (4.x.x) fails the row as a soft
bounce, and `soft_bounce_limit` of them to one address mark it invalid too. `delayed` (the MTA is still
trying) is noted on the timeline and never counts toward a bounce; `relayed` and `expanded` are noted too,
for information. Each (row, report) pair is kept once, so a report read twice counts once. A reply whose
In-Reply-To or References names one of our messages becomes a reply (or a survey answer) on the customer's
timeline. Each message is filed in its own transaction and moved aside only after it committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.channels.email_message import ReturnPath, delivery_id_from_message_id, message_digest
from outreach.core.settings import Settings
from outreach.customers.profiles import mark_address_invalid
from outreach.inbound.mail_parsing import Dsn, DsnRecipient, Other, Reply, classify
from outreach.inbound.mail_sources import open_mailbox
from outreach.inbound.responses import InboundMessage, file_in
from outreach.store.database import insert_returning, utcnow
from outreach.store.events import add_events, event_row
from outreach.store.ledger import Status, move
from outreach.store.schema import bounces, deliveries

log = logging.getLogger(__name__)

# What each filed message counted as, for the command's summary.
OUTCOMES = (
    "hard_bounce", "soft_bounce", "delayed", "informational", "reply", "duplicate", "unmatched", "skipped", "failed"
)  # fmt: skip


def file_mailbox(engine: Engine, location: str, settings: Settings, env: Mapping[str, str]) -> Counter[str]:
    """File every unprocessed message of a Maildir or IMAP mailbox; returns counts by outcome."""
    counts: Counter[str] = Counter()
    if settings.email_return_path:
        ReturnPath(settings.email_return_path)  # a bad setting is refused before any message is read
    with open_mailbox(location, env) as source:
        for mail in source.messages():
            try:
                with engine.begin() as conn:
                    outcome = file_message(conn, mail.raw, settings)
            except Exception:
                log.exception("could not file message %s; it stays for the next run", mail.key)
                counts["failed"] += 1
                continue
            source.done(mail.key)
            counts[outcome] += 1
    return counts


def file_message(conn: Connection, raw: bytes, settings: Settings) -> str:
    parsed = classify(raw)
    if isinstance(parsed, Dsn):
        return _file_dsn(conn, parsed, settings)
    if isinstance(parsed, Reply):
        return _file_reply(conn, parsed, settings)
    assert isinstance(parsed, Other)
    return "skipped"


def _our_rows(conn: Connection, message_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    """Our email ledger rows named by these Message-IDs, in the order given."""
    ids = [i for i in (delivery_id_from_message_id(m) for m in message_ids) if i is not None]
    if not ids:
        return []
    found = {
        r["id"]: dict(r)
        for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.channel == "email")
        ).mappings()
    }
    return [found[i] for i in dict.fromkeys(ids) if i in found]


def _returned_to(conn: Connection, dsn: Dsn, settings: Settings) -> list[dict[str, Any]]:
    """The email ledger row whose own return path (VERP: `bounces+4711.3f9a2c01de@...`) the report was sent
    to, if its check matches the row; the address names the message even when the report quotes nothing."""
    if not settings.email_return_path:
        return []
    path = ReturnPath(settings.email_return_path)
    for address in dsn.addressed_to:
        named = path.delivery_of(address)
        if named is None:
            continue
        row = (
            conn.execute(sa.select(deliveries).where(deliveries.c.id == named[0], deliveries.c.channel == "email"))
            .mappings()
            .first()
        )
        if row is not None and message_digest(row["idempotency_key"]) == named[1]:
            return [dict(row)]
    return []


def _file_dsn(conn: Connection, dsn: Dsn, settings: Settings) -> str:
    rows = _returned_to(conn, dsn, settings) or _our_rows(conn, dsn.original_message_ids)
    if not rows:
        return "unmatched"
    row = rows[0]
    address = (row["address"] or "").lower()
    reported = [r for r in dsn.recipients if r.kind is not None or r.notice is not None]
    # The recipient block for our address; a report about a single recipient is about ours.
    mine = [r for r in reported if address in (r.final_recipient, (r.original_recipient or "").lower())]
    if not mine and len(reported) == 1:
        mine = reported
    if not mine:
        return "skipped"  # a report that says the message was delivered
    failures = [r for r in mine if r.kind is not None]
    recipient = next((r for r in failures if r.kind == "hard"), failures[0] if failures else mine[0])
    kind = recipient.kind or recipient.notice
    assert kind is not None
    now = utcnow()
    inserted = insert_returning(
        conn,
        bounces,
        [
            {
                "delivery_id": row["id"],
                "report_id": dsn.message_id[:320],
                "customer_id": row["customer_id"],
                "address": address,
                "kind": kind,
                "status": recipient.status[:16],
                "diagnostic": recipient.diagnostic,
                "at": now,
            }
        ],
        ("id",),
    )
    if not inserted:
        return "duplicate"
    if recipient.kind is None:
        # Not a failure: the row stays as it is, the customer's timeline says what the MTA reported.
        _note_bounce(conn, row, recipient, now, f"delivery.{recipient.notice}")
        return "delayed" if recipient.notice == "delayed" else "informational"
    # A bounce fails the row, with the bounce as the move's event; a row already settled only gets the event.
    if not _fail(conn, row, recipient, now):
        _note_bounce(conn, row, recipient, now)
    if recipient.kind == "hard":
        mark_address_invalid(conn, row, f"hard bounce {recipient.status}", now)
        return "hard_bounce"
    soft = conn.execute(
        sa.select(sa.func.count())
        .select_from(bounces)
        .where(bounces.c.customer_id == row["customer_id"], bounces.c.address == address, bounces.c.kind == "soft")
    ).scalar_one()
    if soft >= settings.soft_bounce_limit:
        mark_address_invalid(conn, row, f"{soft} soft bounces (last {recipient.status})", now)
    return "soft_bounce"


def _bounce_data(row: Mapping[str, Any], recipient: DsnRecipient) -> dict[str, Any]:
    data = {"kind": recipient.kind or recipient.notice, "status": recipient.status, "address": row["address"]}
    if recipient.diagnostic:
        data["diagnostic"] = recipient.diagnostic
    if recipient.will_retry_until:
        data["will_retry_until"] = recipient.will_retry_until
    return data


def _note_bounce(
    conn: Connection, row: dict[str, Any], recipient: DsnRecipient, now: datetime, kind: str = "delivery.bounced"
) -> None:
    data = _bounce_data(row, recipient)
    add_events(
        conn,
        [
            event_row(
                row["customer_id"],
                kind,
                data,
                at=now,
                delivery_id=row["id"],
                campaign_id=row["campaign_id"],
            )
        ],
    )


def _fail(conn: Connection, row: dict[str, Any], recipient: DsnRecipient, now: datetime) -> bool:
    """The server accepted the message and later gave up on it: the row was sent, and failed. A row already
    settled by a provider's report (delivered, undelivered) stays as it is: the ledger only moves forward."""
    moved = move(
        conn,
        Status.FAILED,
        [row["id"]],
        expect=[Status.SENT, Status.UNKNOWN, Status.SENDING],
        now=now,
        values={
            "error_code": recipient.status[:40],
            "error_message": (f"bounced: {recipient.diagnostic}" if recipient.diagnostic else "bounced")[:2000],
            "finished_at": now,
        },
        event="delivery.bounced",
        describe=lambda r: _bounce_data(r, recipient),
    )
    return bool(moved)


def _file_reply(conn: Connection, reply: Reply, settings: Settings) -> str:
    rows = _our_rows(conn, reply.in_reply_to)
    if not rows:
        return "unmatched"
    message = InboundMessage(
        channel="email",
        provider_message_id=reply.message_id[:320],
        from_address=reply.sender,
        body=reply.text,
        answers_deliveries=tuple(r["id"] for r in rows),
    )
    filed = file_in(conn, message, settings)
    return "duplicate" if filed.duplicate else "reply"
