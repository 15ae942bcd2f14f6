"""Webhook benchmark: signed Twilio status callbacks and inbound SMS through `outreach serve`.

    .venv/bin/python -m bench.webhooks [--rows 20000] [--inbound 5000] [--workers 2] [--concurrency 64]
                                       [--database postgresql|sqlite] [--json-out PATH]

A fresh PostgreSQL database (dropped at the end) or a temporary SQLite file gets N ledger rows in status
`sent`, and `outreach serve --workers W` runs as a subprocess against it. An aiohttp client in this process
(keep-alive, C concurrent requests) posts one signed `delivered` callback per row, then M signed inbound SMS;
every signature is computed before the clock starts. The same client then runs against `raw_app`
(bench/webhooks/raw.py), a Starlette app served by uvicorn with the same worker count that reads the form and
checks the signature but touches no database: the raw limit of HTTP + form + signature on this machine. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from twilio.request_validator import RequestValidator

from bench import http_load
from bench.cpu import CpuMeter
from bench.http_load import Post
from bench.processes import Running, base_settings, free_port, listen_args, outreach_command, server
from bench.report import Machine, log
from bench.runner import run_benchmark
from bench.stores import empty_store
from bench.webhooks.arguments import parse_args
from bench.webhooks.checks import check, record_store
from bench.webhooks.figures import Figures, Shot
from bench.webhooks.raw import raw_command, raw_env
from bench.webhooks.seed import seed
from bench.webhooks.table import table
from bench.webhooks.twilio_requests import ACCOUNT_SID, inbound_requests, status_requests, warmup_requests

# Callbacks for a ledger id that does not exist ("unmatched"): they warm up every server process (code paths,
# the first database connection) before the clock starts and change nothing.
WARMUP_REQUESTS = 500


def fire(
    running: Running, database: str | None, base_url: str, requests: list[Post], concurrency: int, expect: str
) -> Shot:
    """Fire `requests` at the server `running`, metering its CPU and that of the PostgreSQL `database`."""
    meter = CpuMeter({"server": running.pid}, database)
    before = meter.read()
    answers = http_load.concurrently(base_url, requests, concurrency)
    return Shot.of(answers, meter.since(before), expect)


def measure(args: argparse.Namespace, folder: Path, stack: ExitStack) -> Figures:
    machine = Machine.now()
    store = stack.enter_context(empty_store(args.database, folder, args.postgres_url))
    figures = Figures(
        machine=machine,
        database=store.describe(),
        rows=args.rows,
        inbound=args.inbound,
        workers=args.workers,
        concurrency=args.concurrency,
    )
    log(f"inserting {args.rows:,} ledger rows and {args.inbound:,} inbound senders ...")
    setup_start = time.perf_counter()
    settled, senders = seed(store, args.rows, args.inbound)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    validator = RequestValidator(token)
    log("computing signatures ...")
    callbacks = status_requests(validator, base_url, settled)
    warmup = warmup_requests(validator, base_url, WARMUP_REQUESTS)
    replies, figures.expected_kinds = inbound_requests(validator, base_url, senders)
    figures.setup_seconds = time.perf_counter() - setup_start

    env = {
        **base_settings(folder, store.url),
        "OUTREACH_PUBLIC_URL": base_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": token,
    }
    listen = listen_args(port, args.workers)
    real = outreach_command("serve", *listen)
    c = args.concurrency

    log(f"`outreach serve --workers {args.workers}`: {args.rows:,} status callbacks ...")
    with server(real, env, base_url, folder / "serve.log") as running:
        http_load.concurrently(base_url, warmup, c)
        figures.callbacks = fire(running, store.postgres_database, base_url, callbacks, c, "applied")
        if replies:
            log(f"`outreach serve --workers {args.workers}`: {len(replies):,} inbound SMS ...")
            figures.replies = fire(running, store.postgres_database, base_url, replies, c, "<Response")
    record_store(store.engine, figures)

    log(f"raw app, {args.workers} uvicorn worker(s): the same requests ...")
    with server(raw_command(listen), raw_env(env), base_url, folder / "raw.log") as running:
        http_load.concurrently(base_url, warmup, c)
        figures.raw_callbacks = fire(running, None, base_url, callbacks, c, "applied")
        if replies:
            figures.raw_replies = fire(running, None, base_url, replies, c, "<Response")
    check(figures)
    return figures


if __name__ == "__main__":
    sys.exit(run_benchmark(sys.argv[1:], __doc__, parse_args, measure, table))
