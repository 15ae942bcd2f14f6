"""End-to-end benchmark: import customers, plan an email campaign, deliver it with real workers over real SMTP.

    .venv/bin/python -m bench.pipeline [--customers 100000] [--database postgresql|sqlite]
                                       [--processes 2] [--threads 4] [--json-out PATH]

Everything runs on this machine against real services: a fresh PostgreSQL database (dropped at the end) or a
temporary SQLite file, Redis under a namespace of its own (its keys removed at the end), `outreach worker`
processes, and an aiosmtpd server in a separate process that counts what it receives. The same run measures
plain aiosmtplib against the same server with as many connections as the workers have threads, so the
delivery rate is printed next to the raw limit of this machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.pipeline.arguments import parse_args
from bench.pipeline.delivery import run_delivery
from bench.pipeline.figures import Figures, check
from bench.pipeline.import_plan import run_import, run_plan
from bench.pipeline.raw import run_raw
from bench.pipeline.table import table
from bench.processes import base_settings, broker_settings
from bench.report import Machine
from bench.runner import run_benchmark
from bench.smtp_sink import SmtpSink
from bench.stores import broker_namespace, empty_store
from outreach.core.settings import load_settings


def engine_env(
    database_url: str, redis_url: str, namespace: str, smtp_url: str, batch_size: int, folder: Path
) -> dict[str, str]:
    """The OUTREACH_* settings that both this process and the workers run with."""
    return {
        **base_settings(folder, database_url),
        **broker_settings(redis_url, namespace),
        "OUTREACH_SMTP_URL": smtp_url,
        "OUTREACH_BATCH_SIZE": str(batch_size),
        "OUTREACH_LIST_COLUMNS": "products",
        "OUTREACH_OUTBOX_DIR": str(folder / "outbox"),
        "OUTREACH_TEMPLATES_DIR": str(folder / "templates"),
    }


def measure(args: argparse.Namespace, folder: Path, stack: ExitStack) -> Figures:
    machine = Machine.now()
    store = stack.enter_context(empty_store(args.database, folder, args.postgres_url))
    namespace = stack.enter_context(broker_namespace(args.redis_url))
    sink = stack.enter_context(SmtpSink())
    env = engine_env(store.url, args.redis_url, namespace, sink.url, args.batch_size, folder)
    settings = load_settings(env)
    engine = store.engine
    figures = Figures(
        machine=machine,
        database=store.describe(),
        customers=args.customers,
        processes=args.processes,
        threads=args.threads,
        batch_size=settings.batch_size,
    )
    figures.import_ = run_import(engine, settings, folder, args.customers)
    figures.plan = run_plan(engine, settings, folder)
    figures.delivery = run_delivery(
        engine, env, folder, sink, figures.plan.items, args.processes, args.threads, args.timeout
    )
    count = min(args.raw_messages, args.customers)
    figures.raw = run_raw(engine, settings, sink, args.processes, args.threads, count)
    check(figures)
    return figures


if __name__ == "__main__":
    sys.exit(run_benchmark(sys.argv[1:], __doc__, parse_args, measure, table))
