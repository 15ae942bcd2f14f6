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
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench import options
from bench.data import CAMPAIGN_ID, campaign_yaml, write_customers
from bench.processes import Running, base_settings, broker_settings, outreach_workers
from bench.raw_smtp import RawMail, measure_raw
from bench.report import Machine, Phase, log, problem_lines, publish
from bench.smtp_sink import SinkCount, SmtpSink
from bench.stores import broker_namespace, empty_store
from outreach.campaigns import load_campaign
from outreach.channels.base import OutgoingMessage
from outreach.channels.email_message import render_email
from outreach.config import Settings, load_settings
from outreach.delivery import outgoing
from outreach.importer import import_customers
from outreach.ledger import open_count
from outreach.planner import plan_campaign
from outreach.profiles import attribute_catalog
from outreach.schema import deliveries
from workers.broker import setup

OCCURRENCE = "bench"
# Delivery ids of the raw phase's messages: far above any ledger id, so their Message-IDs never collide.
RAW_ID_BASE = 10**12
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


@dataclass
class Figures:
    machine: Machine
    database: str
    customers: int
    processes: int
    threads: int
    batch_size: int
    import_: Phase | None = None
    plan: Phase | None = None
    delivery: Delivery | None = None
    raw: Phase | None = None
    # Building the raw messages (render_email) in this one process: what a worker pays per message on top of
    # sending it.
    build: Phase | None = None
    raw_connections: int = 0
    raw_message_bytes: int = 0
    raw_duplicates: int = 0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def fraction_of_raw(self) -> float | None:
        if self.delivery is None or self.raw is None or self.raw.rate == 0:
            return None
        return self.delivery.phase.rate / self.raw.rate

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "machine": self.machine.as_dict(self.database),
            "customers": self.customers,
            "processes": self.processes,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "import": self.import_.as_dict() if self.import_ else None,
            "plan": self.plan.as_dict() if self.plan else None,
            "delivery": None,
            "raw": None,
            "build": self.build.as_dict() if self.build else None,
            "delivery_fraction_of_raw": round(self.fraction_of_raw, 4) if self.fraction_of_raw is not None else None,
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }
        if self.delivery is not None:
            d = self.delivery
            out["delivery"] = {
                **d.phase.as_dict(),
                "smtp_received": d.smtp_received,
                "smtp_duplicates": d.smtp_duplicates,
                "statuses": d.statuses,
                "first_send_after_seconds": round(d.first_send_after, 3),
                "first_to_last_send": d.steady.as_dict(),
                "workers_exit_code": d.workers_exit_code,
            }
        if self.raw is not None:
            out["raw"] = {
                **self.raw.as_dict(),
                "connections": self.raw_connections,
                "message_bytes": self.raw_message_bytes,
                "smtp_duplicates": self.raw_duplicates,
            }
        return out


# -- services -------------------------------------------------------------------------------------------


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


# -- phases ---------------------------------------------------------------------------------------------


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
    handle = setup(settings, engine)
    try:
        log("planning and enqueueing ...")
        start = time.perf_counter()
        plan = plan_campaign(engine, loaded, settings, OCCURRENCE, dry_run=False, transport=handle.transport)
        seconds = time.perf_counter() - start
    finally:
        handle.close()
    suppressed = sum(sum(s.suppressed.values()) for s in plan.steps)
    if suppressed:
        raise RuntimeError(f"the planner suppressed {suppressed} customers: {[dict(s.suppressed) for s in plan.steps]}")
    return Phase(len(plan.row_ids), seconds)


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


def raw_messages(engine: Engine, settings: Settings, count: int) -> list[OutgoingMessage]:
    """`count` messages as the workers get them (`outgoing`) from the campaign's own ledger rows, each with a
    delivery id and Message-ID of its own."""
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.campaign_id == CAMPAIGN_ID)
                .order_by(deliveries.c.id)
                .limit(count)
            ).mappings()
        ]
    if not rows:
        raise RuntimeError("no ledger rows to build raw messages from")
    return [
        replace(outgoing(rows[i % len(rows)], settings), delivery_id=RAW_ID_BASE + i, message_id=None)
        for i in range(count)
    ]


def wire_mails(messages: list[OutgoingMessage], email_from: str) -> list[RawMail]:
    """The messages as SMTP sends them, built by `render_email` exactly as SmtpProvider builds them."""
    sender = parseaddr(email_from)[1]
    mails: list[RawMail] = []
    for message in messages:
        email = render_email(message, email_from)
        mails.append((sender, email.recipient, email.data))
    return mails


def run_raw(engine: Engine, settings: Settings, sink: SmtpSink, figures: Figures, count: int) -> None:
    messages = raw_messages(engine, settings, count)
    log(f"building {count:,} messages with render_email ...")
    start = time.perf_counter()
    mails = wire_mails(messages, settings.email_from)
    figures.build = Phase(len(mails), time.perf_counter() - start)
    connections = figures.processes * figures.threads
    log(f"raw aiosmtplib: {count:,} messages over {connections} connections ...")
    before = sink.count()
    result = measure_raw("127.0.0.1", sink.port, mails, figures.processes, figures.threads)
    received = sink.count() - before
    figures.raw = Phase(result.messages, result.seconds)
    figures.raw_connections = result.connections
    figures.raw_message_bytes = round(sum(len(m[2]) for m in mails) / len(mails))
    figures.raw_duplicates = received.duplicates
    if received.messages != count:
        figures.problems.append(f"raw phase: the SMTP server received {received.messages:,}, sent {count:,}")


# -- report ---------------------------------------------------------------------------------------------


def table(figures: Figures) -> str:
    f = figures
    lines = [
        "outreach pipeline benchmark",
        f.machine.line(),
        f"  database    {f.database}",
        f"  customers   {f.customers:,}   workers {f.processes} processes x {f.threads} threads   "
        f"batch size {f.batch_size}",
        "",
        f"  {'phase':<38}{'items':>10}{'seconds':>10}{'per second':>12}",
    ]

    def row(label: str, phase: Phase | None) -> None:
        if phase is not None:
            lines.append(f"  {label:<38}{phase.items:>10,}{phase.seconds:>10.1f}{phase.rate:>12,.0f}")

    row("import customers", f.import_)
    row("plan campaign (rows written + enqueued)", f.plan)
    d = f.delivery
    if d is not None:
        row("deliver (workers launch -> ledger done)", d.phase)
        row("  of which first -> last send", d.steady)
        lines.append(f"  {'  first send after launch':<38}{'':>10}{d.first_send_after:>10.1f}")
    row(f"raw aiosmtplib ({f.raw_connections} connections)", f.raw)
    row("render_email (1 process, 1 thread)", f.build)
    if f.fraction_of_raw is not None:
        lines.append(f"  {'delivery rate / raw rate':<38}{'':>10}{'':>10}{f.fraction_of_raw:>11.1%}")
    lines.append("")
    if d is not None:
        others = {k: v for k, v in d.statuses.items() if k != "sent"}
        lines.append(
            f"  check: ledger sent {d.statuses.get('sent', 0):,}, SMTP server received {d.smtp_received:,}, "
            f"repeated Message-IDs {d.smtp_duplicates}, other statuses {others or 'none'}"
        )
        lines.append(f"  workers stopped by SIGTERM, exit status {d.workers_exit_code}")
    if f.raw is not None:
        lines.append(
            f"  raw messages: {f.raw_message_bytes:,} bytes on average, repeated Message-IDs {f.raw_duplicates}"
        )
    lines.append(f"  whole run: {f.total_seconds:.0f} s")
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)


def check(figures: Figures) -> None:
    d = figures.delivery
    if d is None or figures.plan is None:
        return
    sent = d.statuses.get("sent", 0)
    if sent != figures.plan.items:
        figures.problems.append(f"{figures.plan.items:,} rows planned but {sent:,} sent: {d.statuses}")
    if d.smtp_received != sent:
        figures.problems.append(f"the SMTP server received {d.smtp_received:,} messages, the ledger says {sent:,} sent")
    if d.smtp_duplicates or figures.raw_duplicates:
        figures.problems.append("the SMTP server received some Message-ID more than once")


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="customers to import and email")
    options.add_store_kind(parser, "--database")
    parser.add_argument("--processes", type=int, default=2, help="`outreach worker --processes`")
    parser.add_argument("--threads", type=int, default=4, help="`outreach worker --threads`")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(os.environ.get("OUTREACH_BATCH_SIZE", Settings.batch_size)),
        help="ledger ids per broker message (default: OUTREACH_BATCH_SIZE or %(default)s)",
    )
    parser.add_argument("--raw-messages", type=int, default=20_000, help="messages of the raw phase (at most N)")
    options.add_postgres_url(parser)
    options.add_redis_url(parser, "redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for delivery")
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    options.require_at_least(parser, args, 1, "customers", "processes", "threads", "batch_size", "raw_messages")
    return args


def run(args: argparse.Namespace) -> Figures:
    started = time.perf_counter()
    machine = Machine.now()
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
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
        run_raw(engine, settings, sink, figures, min(args.raw_messages, args.customers))
        check(figures)
        log("cleaning up ...")
    figures.total_seconds = time.perf_counter() - started
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    return publish(table(figures), figures, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
