"""The engine's phases, each in its own process: `import_customers` of the CSV into the empty store, then the
bench campaign planned for real (bench/pipeline/import_plan.py does both; here they are only counted).

Both tell their progress file how far they got through the engine's own progress callbacks: the import the
rows checked and written (in its one transaction, so nothing is committed before the end), the plan the ledger
rows written, committed and enqueued (and the customers decided, which runs up to two chunks ahead).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.data import CAMPAIGN_ID
from bench.pipeline.import_plan import import_file
from bench.pipeline.import_plan import run_plan as plan_bench_campaign
from bench.scale.phases import Outcome, ProgressFile, Work, peak_rss_kb
from outreach.core.settings import Settings, load_settings
from outreach.planning.queueing import Transport
from outreach.store.database import open_store
from outreach.store.schema import customers, deliveries


class CountingTransport:
    """Hands the ids on to the broker's transport and counts them (not keeps them: that would cost memory).
    The planner's writer threads enqueue concurrently, hence the lock."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.ids = 0
        self.messages = 0
        self._lock = threading.Lock()

    def enqueue(self, ids: Sequence[int], delay_ms: int = 0) -> None:
        self.inner.enqueue(ids, delay_ms)
        with self._lock:
            self.ids += len(ids)
            self.messages += 1


def _open(work: Work) -> tuple[Settings, Engine]:
    return load_settings(work.env), open_store(work.database_url)


def run_import(work: Work, progress: ProgressFile) -> Outcome:
    settings, engine = _open(work)

    def rows_checked(bytes_read: int, total_bytes: int, rows: int) -> None:
        progress.update(rows, bytes_read=bytes_read, total_bytes=total_bytes)

    try:
        start_rss = peak_rss_kb()
        progress.start()  # import_file starts its clock right away
        phase = import_file(engine, settings, work.csv_path, progress=rows_checked)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
    finally:
        engine.dispose()
    return Outcome(phase.items, phase.seconds, start_rss, {"created": phase.items, "customers_in_store": stored})


def run_plan(work: Work, progress: ProgressFile) -> Outcome:
    settings, engine = _open(work)
    counter: CountingTransport | None = None

    def counting(inner: Transport) -> Transport:
        nonlocal counter
        counter = CountingTransport(inner)
        progress.start()  # run_plan wraps the transport just before it starts its clock
        return counter

    def decided(done: int, total: int) -> None:
        progress.update(counter.ids if counter else 0, decided=done, to_plan=total)

    try:
        start_rss = peak_rss_kb()
        phase = plan_bench_campaign(engine, settings, Path(work.folder), wrap_transport=counting, progress=decided)
        with engine.connect() as conn:
            statuses = {
                str(status): int(n)
                for status, n in conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.campaign_id == CAMPAIGN_ID)
                    .group_by(deliveries.c.status)
                )
            }
    finally:
        engine.dispose()
    counts = {
        "planned": phase.items,
        "ledger_rows": sum(statuses.values()),
        "ledger_queued": statuses.get("queued", 0),
        "ids_enqueued": counter.ids if counter else 0,
        "broker_messages": counter.messages if counter else 0,
    }
    return Outcome(phase.items, phase.seconds, start_rss, counts)
