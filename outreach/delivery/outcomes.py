"""Recording what the providers said about a claimed batch: sent, failed, to retry, dead, or suppressed by a
send-time check; and what a provider's verdict on the recipient means for their profile (they blocked us,
or the address cannot receive)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from outreach.channels.base import Outcome, SendResult
from outreach.core.settings import Settings
from outreach.customers.profiles import mark_address_invalid, set_consent
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status, move, move_to_sent

# A result may arrive after the sweep gave the row up as `unknown`: what the provider said still wins.
_MINE = (Status.SENDING, Status.UNKNOWN)


@dataclass
class RetryPlan:
    """Rows put back to `queued` after a transient error, grouped by how long to wait (milliseconds)."""

    by_delay: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, delay_ms: int, delivery_id: int) -> None:
        self.by_delay[delay_ms].append(delivery_id)


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Doubling backoff from `retry_backoff`, capped, with a little jitter so retries do not stampede."""
    base = min(settings.retry_backoff * (2 ** max(attempts - 1, 0)), settings.retry_backoff_max)
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def record_outcomes(
    engine: Engine,
    claimed: Sequence[DeliveryRow],
    results: Iterable[SendResult],
    blocked: Mapping[int, tuple[str, str]],
    settings: Settings,
    provider_names: Mapping[str, str] | None = None,
) -> RetryPlan:
    """Write every result of a batch in one transaction; returns the rows to enqueue again later.

    `provider_names` says which provider served each channel, for the ledger's `provider` column.
    """
    with engine.begin() as conn:
        return record_in(conn, claimed, results, blocked, settings, provider_names)


def record_in(
    conn: Connection,
    claimed: Sequence[DeliveryRow] | Mapping[int, DeliveryRow],
    results: Iterable[SendResult],
    blocked: Mapping[int, tuple[str, str]],
    settings: Settings,
    provider_names: Mapping[str, str] | None = None,
) -> RetryPlan:
    """`record_outcomes` in `conn`'s transaction; `claimed` may be the rows by id."""
    provider_names = provider_names or {}
    now = utcnow()
    rows = claimed if isinstance(claimed, Mapping) else {r["id"]: r for r in claimed}
    retry = RetryPlan()
    # target status -> delivery id -> (columns, event data)
    changes: dict[str, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(dict)
    opted_out: list[DeliveryRow] = []
    invalid: list[tuple[DeliveryRow, SendResult]] = []

    for delivery_id, (reason, detail) in blocked.items():
        changes["suppressed"][delivery_id] = (
            {"finished_at": now, "reason": reason, "detail": detail},
            {"reason": reason, "detail": detail, "channel": rows[delivery_id]["channel"]},
        )
    for result in results:
        row = rows[result.delivery_id]
        base = {"provider": provider_names.get(row["channel"])}
        error = {"error_code": result.error_code, "error_message": result.error}
        channel = row["channel"]
        if result.outcome is Outcome.SENT:
            changes["sent"][row["id"]] = (
                {**base, "sent_at": now, "provider_message_id": result.provider_id, "error_code": None,
                 "error_message": None},
                {"channel": channel, "provider_id": result.provider_id},
            )  # fmt: skip
        elif result.outcome is Outcome.PERMANENT:
            changes["failed"][row["id"]] = ({**base, **error, "finished_at": now}, {"channel": channel, **error})
            if result.recipient_opted_out:
                opted_out.append(row)
            if result.address_invalid:
                invalid.append((row, result))
        elif row["attempts"] >= settings.max_attempts:
            changes["dead"][row["id"]] = (
                {**base, **error, "finished_at": now},
                {"channel": channel, "attempts": row["attempts"], **error},
            )
        else:
            delay = retry_delay(settings, row["attempts"])
            changes["retry"][row["id"]] = (
                {**base, **error, "enqueued_at": now, "next_attempt_at": now + delay},
                {"channel": channel, "attempt": row["attempts"], "retry_in_s": round(delay.total_seconds(), 1),
                 **error},
            )  # fmt: skip
            retry.add(int(delay.total_seconds() * 1000), row["id"])

    targets = {"sent": Status.SENT, "failed": Status.FAILED, "dead": Status.DEAD, "retry": Status.QUEUED,
               "suppressed": Status.SUPPRESSED}  # fmt: skip
    sent = changes.pop("sent", None)
    if sent:
        move_to_sent(
            conn,
            {i: (rows[i]["claim_token"], columns, data) for i, (columns, data) in sent.items()},
            {i: rows[i] for i in sent},
            now,
        )
    failed: set[int] = set()
    for kind, by_id in changes.items():
        # each row only if still held by the claim it was sent under (rows of several batches may be here)
        moved = move(
            conn,
            targets[kind],
            list(by_id),
            expect=_MINE,
            tokens={i: rows[i]["claim_token"] for i in by_id},
            now=now,
            per_row={i: by_id[i][0] for i in by_id},
            event=f"delivery.{kind}",
            describe=lambda r, by_id=by_id: by_id[r["id"]][1],  # type: ignore[misc]
        )
        if kind == "failed":
            failed.update(r["id"] for r in moved)
    # What the answer says of the recipient follows only from a move it made: the same answer written again
    # (a round tried again after a lost commit answer, a spill file applied twice) changes nothing more.
    opted_out = [row for row in opted_out if row["id"] in failed]
    invalid = [(row, result) for row, result in invalid if row["id"] in failed]
    for row in opted_out:
        for purpose in ("marketing", "service"):
            set_consent(
                conn, row["customer_id"], row["channel"], purpose, "revoked", "provider:recipient-opted-out", at=now
            )
    for row, result in invalid:
        mark_address_invalid(
            conn, row, f"{provider_names.get(row['channel'], 'provider')} error {result.error_code}", now
        )
    return retry
