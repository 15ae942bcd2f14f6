"""Spill files: the providers' answers a worker could not write while the store was away, kept on local disk
until the next `outreach worker` start or `outreach sweep` writes them to the ledger.

A file is JSON lines, one answer each (the row, the claim it was sent under, what the provider said), in
`spill_dir`, named after the host, the process and the round; it is written under a hidden name, fsynced,
then renamed, so a reader never sees half a file. Applying one re-reads its rows and records each answer
(`outcomes.record_in`) only on a row still `sending` or `unknown` under the very claim it was sent under: a
row the sweep gave up as `unknown` is settled, a row sent again since (a replay, `on_unknown: resend`) is
left alone. The file is deleted once its answers are committed; applying it twice changes nothing.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.channels.base import Outcome, SendResult
from outreach.core.settings import Settings
from outreach.delivery.outcomes import record_in
from outreach.planning.queueing import Transport, enqueue_in_batches
from outreach.store.database import utcnow
from outreach.store.ledger import DeliveryRow, Status, as_row
from outreach.store.schema import deliveries

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
# A row's answer may be applied while the row is in one of these states (as `record_in` would).
_SETTLEABLE = (Status.SENDING, Status.UNKNOWN)
_rounds = itertools.count(1)
_rounds_lock = threading.Lock()


@dataclass(frozen=True)
class Spilled:
    """One answer as a spill file keeps it."""

    delivery_id: int
    claim_token: str | None
    channel: str
    provider: str | None
    outcome: str
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    address_invalid: bool = False
    recipient_opted_out: bool = False
    window_closed: bool = False

    def result(self) -> SendResult:
        return SendResult(
            self.delivery_id,
            Outcome(self.outcome),
            provider_id=self.provider_id,
            error_code=self.error_code,
            error=self.error,
            address_invalid=self.address_invalid,
            recipient_opted_out=self.recipient_opted_out,
            window_closed=self.window_closed,
        )


@dataclass(frozen=True)
class SpillReport:
    """What applying the spill files did."""

    files: int = 0  # files applied and deleted
    applied: int = 0  # answers written to their rows
    stale: int = 0  # answers whose row had moved on (another claim, or settled): left alone
    unreadable: int = 0  # files kept because they could not be read (named in the log)


def spill(
    folder: Path, results: Iterable[SendResult], rows: Mapping[int, DeliveryRow], names: Mapping[str, str]
) -> Path:
    """Write these answers to a new spill file in `folder`, durably; returns its path."""
    lines = []
    for result in results:
        row = rows[result.delivery_id]
        spilled = Spilled(
            delivery_id=result.delivery_id,
            claim_token=row["claim_token"],
            channel=row["channel"],
            provider=names.get(row["channel"]),
            outcome=str(result.outcome),
            provider_id=result.provider_id,
            error_code=result.error_code,
            error=result.error,
            address_invalid=result.address_invalid,
            recipient_opted_out=result.recipient_opted_out,
            window_closed=result.window_closed,
        )
        lines.append(json.dumps(asdict(spilled), ensure_ascii=False) + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    with _rounds_lock:
        number = next(_rounds)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{number}{SUFFIX}"
    hidden = folder / f".{name}.partial"
    # 0600: the answers name customers' messages; only the worker's user reads them
    fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(lines)
        out.flush()
        os.fsync(out.fileno())
    final = folder / name
    os.replace(hidden, final)
    _fsync_folder(folder)  # the rename itself survives a crash of the machine
    return final


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spill_files(folder: Path) -> list[Path]:
    """The complete spill files in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))


def read_spill(path: Path) -> list[Spilled]:
    """The answers of one spill file; raises ValueError for a line that is not one."""
    spilled = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data: dict[str, Any] = json.loads(line)
                spilled.append(Spilled(**data))
                Outcome(spilled[-1].outcome)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a spilled answer ({exc})") from None
    return spilled


def apply_spills(engine: Engine, settings: Settings, transport: Transport | None) -> SpillReport:
    """Write every spill file of `settings.spill_dir` to the ledger, deleting each once committed; rows put
    back to `queued` by a transient answer are enqueued again with their delay (with `transport`; without it,
    the sweep finds them)."""
    files = applied = stale = unreadable = 0
    for path in spill_files(settings.spill_dir):
        try:
            spilled = read_spill(path)
        except (OSError, ValueError) as exc:
            log.error("spill file kept, it cannot be read: %s", exc)
            unreadable += 1
            continue
        done, left_alone, retry = _apply(engine, settings, spilled)
        if transport is not None:
            for delay_ms, ids in retry.items():
                enqueue_in_batches(transport, ids, settings.batch_size, delay_ms)
        path.unlink(missing_ok=True)  # a sweep running beside this one may have applied it too
        files += 1
        applied += done
        stale += left_alone
        log.info("spill file %s applied: %d answers written, %d left alone (their rows had moved on)",
                 path.name, done, left_alone)  # fmt: skip
    return SpillReport(files, applied, stale, unreadable)


def _apply(engine: Engine, settings: Settings, spilled: list[Spilled]) -> tuple[int, int, dict[int, list[int]]]:
    """One file's answers in one transaction: (answers written, answers left alone, retries by delay)."""
    latest = {s.delivery_id: s for s in spilled}  # one answer per row (a row is sent once per claim)
    d = deliveries.c
    with engine.begin() as conn:
        current = {
            r["id"]: as_row(r)
            for r in conn.execute(
                sa.select(deliveries).where(d.id.in_(sorted(latest))).order_by(d.id).with_for_update()
            ).mappings()
        }
        rows = {
            i: row
            for i, row in current.items()
            if row["status"] in _SETTLEABLE and row["claim_token"] is not None
            and row["claim_token"] == latest[i].claim_token
        }  # fmt: skip
        names = {s.channel: s.provider for s in latest.values() if s.provider}
        retry = record_in(conn, rows, [latest[i].result() for i in rows], {}, settings, names)
    by_delay: dict[int, list[int]] = defaultdict(list)
    for delay_ms, ids in retry.by_delay.items():
        by_delay[delay_ms].extend(ids)
    return len(rows), len(latest) - len(rows), by_delay
