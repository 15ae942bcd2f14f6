"""One size of the scale benchmark: N customers written to a CSV, then, each in a fresh process of its own
and in this order, the raw COPY of that CSV, `import_customers` of it, the bench campaign planned for real
and (for the headline size) Jinja2 rendering its templates for the same customers.

Each size gets an empty PostgreSQL database and a Redis namespace of its own, removed before the next size.
Each phase has `--max-seconds`; once one is stopped at that limit, the size's later phases are skipped (they
need what it did not finish).
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import write_customers
from bench.pipeline.__main__ import engine_env
from bench.report import Phase, log
from bench.scale.child import Measured, run_phase
from bench.scale.phases import Work
from bench.stores import broker_namespace, empty_store

# Planning only enqueues; nothing connects to SMTP in these phases, but the settings name a server.
UNUSED_SMTP_URL = "smtp://127.0.0.1:9"

# phase -> how the output names it, and what its items are
LABELS = {"copy": "raw COPY", "import": "import_customers", "plan": "plan", "render": "Jinja2 render"}
UNITS = {"copy": "rows", "import": "rows", "plan": "ledger rows written and enqueued", "render": "customers"}


def stop_line(name: str, m: Measured) -> str:
    """What a stopped phase reached, e.g. `import_customers stopped at the 600 s limit: 123,456 of 200,000
    rows (205/s so far)`."""
    s = m.stopped
    assert s is not None
    if not s.started:
        return f"{LABELS[name]} stopped at the {s.limit_seconds:g} s limit before its clock started (still starting up)"
    decided = f", {s.extra['decided']:,} customers decided" if "decided" in s.extra else ""
    reached = (
        f"{LABELS[name]} stopped at the {s.limit_seconds:g} s limit: {m.phase.items:,} of {s.total:,} {UNITS[name]}"
    )
    if m.phase.items == 0:
        return f"{reached} in the {s.ran_seconds:.1f} s its clock ran{decided}"
    return f"{reached} ({m.phase.rate:,.0f}/s so far{decided})"


@dataclass
class SizeRun:
    customers: int
    database: str
    csv_bytes: int
    write: Phase  # write_customers
    copy: Measured
    import_: Measured | None  # None: skipped, an earlier phase was stopped
    plan: Measured | None
    render: Measured | None  # None: skipped, or not asked for at this size
    skipped: list[str]  # phases skipped because an earlier one was stopped

    def measured(self) -> dict[str, Measured]:
        """The phases that ran (to the end or until stopped), by name, in their order."""
        phases = {"copy": self.copy, "import": self.import_, "plan": self.plan, "render": self.render}
        return {name: m for name, m in phases.items() if m is not None}

    @property
    def stopped(self) -> tuple[str, Measured] | None:
        """The phase stopped at the time limit, if one was."""
        return next(((name, m) for name, m in self.measured().items() if m.stopped), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "csv_bytes": self.csv_bytes,
            "write_csv": self.write.as_dict(),
            "raw_copy": self.copy.as_dict(),
            "import": self.import_.as_dict() if self.import_ else None,
            "plan": self.plan.as_dict() if self.plan else None,
            "jinja2_render": self.render.as_dict() if self.render else None,
            "skipped": self.skipped,
        }


def run_size(args: argparse.Namespace, count: int, parent: Path, render: bool) -> SizeRun:
    folder = parent / f"customers-{count}"
    folder.mkdir()
    with ExitStack() as stack:
        store = stack.enter_context(empty_store("postgresql", folder, args.postgres_url))
        namespace = stack.enter_context(broker_namespace(args.redis_url))
        env = engine_env(store.url, args.redis_url, namespace, UNUSED_SMTP_URL, args.batch_size, folder)
        path = folder / "customers.csv"
        log(f"[{count:,}] writing the customers CSV ...")
        start = time.perf_counter()
        write_customers(path, count)
        write = Phase(count, time.perf_counter() - start)
        csv_bytes = path.stat().st_size
        work = Work(count, str(path), store.url, env, str(folder))
        steps = {
            "copy": "raw COPY of the CSV",
            "import": "import_customers",
            "plan": "planning the campaign",
            **({"render": "Jinja2 rendering the campaign's templates"} if render else {}),
        }
        measured: dict[str, Measured] = {}
        skipped: list[str] = []
        for name, doing in steps.items():
            stopped = next((n for n, m in measured.items() if m.stopped), None)
            if stopped is not None:
                skipped.append(name)
                continue
            log(f"[{count:,}] {doing} ...")
            m = measured[name] = run_phase(name, work, args.max_seconds)
            if m.stopped:
                log(f"[{count:,}] {stop_line(name, m)}")
            elif name == "import":
                store.analyze()  # fresh statistics, as autovacuum would give them, outside any clock
        if skipped:
            log(f"[{count:,}] skipped: {', '.join(LABELS[name] for name in skipped)}")
        database = store.describe()
        log(f"[{count:,}] dropping the database and the Redis keys ...")
    path.unlink()
    return SizeRun(
        count,
        database,
        csv_bytes,
        write,
        measured["copy"],
        measured.get("import"),
        measured.get("plan"),
        measured.get("render"),
        skipped,
    )
