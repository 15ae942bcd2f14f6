"""The pipeline's delivery phase: real `outreach worker` processes send the planned campaign to the SMTP sink,
timed from their launch until the ledger has no open row for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.data import CAMPAIGN_ID
from bench.processes import Running, outreach_workers
from bench.report import Phase, log
from bench.smtp_sink import SinkCount, SmtpSink
from outreach.store.ledger import open_count
from outreach.store.schema import deliveries

# How often the SMTP server's count is read, and the ledger asked before every message has arrived.
POLL_SECONDS = 0.05
CHECK_SECONDS = 3.0


@dataclass
class Delivery:
    phase: Phase
    smtp_received: int
    smtp_duplicates: int
    statuses: dict[str, int]
    # From launching `outreach worker` to the first row marked sent, and the rate from first to last send.
    first_send_after: float
    steady: Phase
    workers_exit_code: int | None


def run_delivery(
    engine: Engine,
    env: dict[str, str],
    folder: Path,
    sink: SmtpSink,
    expected: int,
    processes: int,
    threads: int,
    timeout: float,
) -> Delivery:
    """Start `outreach worker`, wait until the ledger has no open row for the campaign, stop the workers."""
    before = sink.count()
    log(f"delivering with `outreach worker --processes {processes} --threads {threads}` ...")
    launched = time.time()
    start = time.perf_counter()
    with outreach_workers(env, folder, processes, threads) as running:
        _wait_until_done(engine, running, sink, before, expected, timeout)
        seconds = time.perf_counter() - start
        exit_code = running.stop()
    received = sink.count() - before
    with engine.connect() as conn:
        statuses = {
            str(status): int(n)
            for status, n in conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.campaign_id == CAMPAIGN_ID)
                .group_by(deliveries.c.status)
            )
        }
        first, last = conn.execute(
            sa.select(sa.func.min(deliveries.c.sent_at), sa.func.max(deliveries.c.sent_at)).where(
                deliveries.c.campaign_id == CAMPAIGN_ID
            )
        ).one()
    sent = statuses.get("sent", 0)
    first_after = first.timestamp() - launched if first else 0.0
    span = (last - first).total_seconds() if first and last else 0.0
    return Delivery(
        phase=Phase(sent, seconds),
        smtp_received=received.messages,
        smtp_duplicates=received.duplicates,
        statuses=statuses,
        first_send_after=first_after,
        steady=Phase(max(sent - 1, 0), span),
        workers_exit_code=exit_code,
    )


def _wait_until_done(
    engine: Engine, running: Running, sink: SmtpSink, before: SinkCount, expected: int, timeout: float
) -> None:
    """Return once the ledger has no open row for the campaign.

    Counting open rows is not free for the database (dead index entries pile up until VACUUM), so the ledger is
    asked only every few seconds until the SMTP server has received every message, then often.
    """
    start = time.perf_counter()
    next_check = next_report = start
    while True:
        now = time.perf_counter()
        received = (sink.count() - before).messages
        if received >= expected or now >= next_check:
            with engine.connect() as conn:
                if open_count(conn, CAMPAIGN_ID) == 0:
                    return
            next_check = now + CHECK_SECONDS
        running.check_running()
        if now - start > timeout:
            raise RuntimeError(f"rows still open after {timeout:.0f} s:\n{running.tail()}")
        if now >= next_report:
            if now > start:
                log(f"  {received:,} of {expected:,} received by the SMTP server after {now - start:.0f} s")
            next_report = now + 5
        time.sleep(POLL_SECONDS)
