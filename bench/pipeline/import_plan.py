"""The pipeline's first two phases: N customers imported into an empty store from a CSV, then the email
campaign planned for real (ledger rows written, their ids enqueued to Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.data import campaign_yaml, write_customers
from bench.report import Phase, log
from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from outreach.customers.importer import Progress, import_customers
from outreach.customers.profiles import attribute_catalog
from outreach.planning.planner import plan_campaign
from outreach.planning.queueing import Transport
from workers.broker import running_workers

OCCURRENCE = "bench"


def run_import(engine: Engine, settings: Settings, folder: Path, count: int) -> Phase:
    path = folder / "customers.csv"
    log(f"writing {count:,} customers to {path.name} ...")
    write_customers(path, count)
    phase = import_file(engine, settings, path)
    if phase.items != count:
        raise RuntimeError(f"import created {phase.items} customers, expected {count}")
    return phase


def import_file(engine: Engine, settings: Settings, path: Path, progress: Progress | None = None) -> Phase:
    """`import_customers` of the CSV at `path`, timed: the customers it created. `progress` is handed to
    `import_customers` (bytes read, the file's bytes, rows checked; after each chunk)."""
    log("importing ...")
    start = time.perf_counter()
    summary = import_customers(engine, path, settings, progress=progress)
    return Phase(summary.created, time.perf_counter() - start)


def run_plan(
    engine: Engine,
    settings: Settings,
    folder: Path,
    wrap_transport: Callable[[Transport], Transport] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Phase:
    """Plan the bench campaign for real, its ids enqueued to Redis (through `wrap_transport(transport)` if
    given, e.g. to count them): the ledger rows planned. `progress` is handed to `plan_campaign` (customers
    decided so far, customers to plan; after each chunk is decided, before it is written)."""
    path = folder / "campaign.yaml"
    path.write_text(campaign_yaml(), encoding="utf-8")
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    loaded = load_campaign(path, settings, catalog)
    # Redis: planning only enqueues; `outreach worker` delivers in the next phase.
    with running_workers(settings, engine, start=False) as handle:
        log("planning and enqueueing ...")
        transport: Transport = handle.transport if wrap_transport is None else wrap_transport(handle.transport)
        start = time.perf_counter()
        plan = plan_campaign(
            engine, loaded, settings, OCCURRENCE, dry_run=False, transport=transport, progress=progress
        )
        seconds = time.perf_counter() - start
    suppressed = sum(sum(s.suppressed.values()) for s in plan.steps)
    if suppressed:
        raise RuntimeError(f"the planner suppressed {suppressed} customers: {[dict(s.suppressed) for s in plan.steps]}")
    return Phase(len(plan.row_ids), seconds)
