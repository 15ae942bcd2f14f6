"""One size of the scale benchmark: N customers written to a CSV, then, each in a fresh process of its own
and in this order, the raw COPY of that CSV, `import_customers` of it, the bench campaign planned for real
and (for the headline size) Jinja2 rendering its templates for the same customers.

Each size gets an empty PostgreSQL database and a Redis namespace of its own, removed before the next size.
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


@dataclass
class SizeRun:
    customers: int
    database: str
    csv_bytes: int
    write: Phase  # write_customers
    copy: Measured
    import_: Measured
    plan: Measured
    render: Measured | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "csv_bytes": self.csv_bytes,
            "write_csv": self.write.as_dict(),
            "raw_copy": self.copy.as_dict(),
            "import": self.import_.as_dict(),
            "plan": self.plan.as_dict(),
            "jinja2_render": self.render.as_dict() if self.render else None,
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
        log(f"[{count:,}] raw COPY of the CSV ...")
        copy = run_phase("copy", work)
        log(f"[{count:,}] import_customers ...")
        imported = run_phase("import", work)
        store.analyze()  # fresh statistics, as autovacuum would give them, outside any clock
        log(f"[{count:,}] planning the campaign ...")
        plan = run_phase("plan", work)
        rendered = None
        if render:
            log(f"[{count:,}] Jinja2 rendering the campaign's templates ...")
            rendered = run_phase("render", work)
        database = store.describe()
        log(f"[{count:,}] dropping the database and the Redis keys ...")
    path.unlink()
    return SizeRun(count, database, csv_bytes, write, copy, imported, plan, rendered)
