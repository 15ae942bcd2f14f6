"""The pipeline's first two phases: N customers imported into an empty store from a CSV, then the email
campaign planned for real (ledger rows written, their ids enqueued to Redis)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.data import campaign_yaml, write_customers
from bench.report import Phase, log
from outreach.campaigns.loading import load_campaign
from outreach.core.settings import Settings
from outreach.customers.importer import import_customers
from outreach.customers.profiles import attribute_catalog
from outreach.planning.planner import plan_campaign
from workers.broker import running_workers

OCCURRENCE = "bench"


def run_import(engine: Engine, settings: Settings, folder: Path, count: int) -> Phase:
    path = folder / "customers.csv"
    log(f"writing {count:,} customers to {path.name} ...")
    write_customers(path, count)
    log("importing ...")
    start = time.perf_counter()
    summary = import_customers(engine, path, settings)
    seconds = time.perf_counter() - start
    if summary.created != count:
        raise RuntimeError(f"import created {summary.created} customers, expected {count}")
    return Phase(summary.created, seconds)


def run_plan(engine: Engine, settings: Settings, folder: Path) -> Phase:
    path = folder / "campaign.yaml"
    path.write_text(campaign_yaml(), encoding="utf-8")
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    loaded = load_campaign(path, settings, catalog)
    # Redis: planning only enqueues; `outreach worker` delivers in the next phase.
    with running_workers(settings, engine, start=False) as handle:
        log("planning and enqueueing ...")
        start = time.perf_counter()
        plan = plan_campaign(engine, loaded, settings, OCCURRENCE, dry_run=False, transport=handle.transport)
        seconds = time.perf_counter() - start
    suppressed = sum(sum(s.suppressed.values()) for s in plan.steps)
    if suppressed:
        raise RuntimeError(f"the planner suppressed {suppressed} customers: {[dict(s.suppressed) for s in plan.steps]}")
    return Phase(len(plan.row_ids), seconds)
