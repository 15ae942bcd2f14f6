"""Auto-reply benchmark: complaints on WeChat answered by `campaigns/complaint-ack.yaml` through real workers.

    .venv/bin/python -m bench.auto_reply [--customers 2000] [--complaints 500] [--plain N] [--clients 8]
                                         [--processes 1] [--threads 8] [--store postgresql|sqlite]
                                         [--server thread|process] [--json-out PATH]

What README.md promises: "a complaint sent on WeChat gets the configured auto-reply in the same thread within
seconds". A fresh PostgreSQL database (dropped at the end) or a temporary SQLite file gets N customers with
WeChat openids; `outreach serve`'s app (`create_app(settings, broker_transport(settings))`, so auto-replies
are enqueued to Redis) runs under uvicorn on loopback; `outreach worker` processes deliver through the
loopback WeChat API of tests/wechat_server.py. A pool of client threads posts M complaints as signed WeChat
XML pushes, each from a different customer (every 10th pushed twice with the same MsgId, as WeChat redelivers),
and each complaint's time from the POST until its reply reaches the WeChat server is recorded. In the same
run, the same client posts signed pushes that match no trigger: their rate is the limit that shows what the
trigger (planning the answer, enqueueing it) costs the webhook. No figure is asserted; the exit status is 1
when a check fails (a complaint without exactly one correct reply, a reply to a plain push, a non-"success"
answer). See bench/README.md.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench import http_load
from bench.auto_reply.arguments import parse_args
from bench.auto_reply.campaign import CAMPAIGN_FILE, CAMPAIGN_ID, ROOT, expected_reply
from bench.auto_reply.figures import Figures, Posted, answer_label
from bench.auto_reply.outcome import check, record_replies, record_store
from bench.auto_reply.pushes import WARMUP, sign_pushes, write_people
from bench.auto_reply.services import STARTUP_TIMEOUT, app_and_workers, outreach_env
from bench.auto_reply.table import table
from bench.auto_reply.waiting import wait_for_ledger, wait_for_replies
from bench.auto_reply.wechat_api import TimedWeChatServer
from bench.cpu import CpuMeter
from bench.processes import free_port
from bench.report import Machine, log
from bench.runner import run_benchmark
from bench.stores import broker_namespace, empty_store
from outreach.core.settings import load_settings
from outreach.customers.importer import import_customers

# After the last expected reply and an empty ledger: how long to keep watching for a second reply.
SETTLE_SECONDS = 3.0


def measure(args: argparse.Namespace, folder: Path, stack: ExitStack) -> Figures:
    figures = Figures(machine=Machine.now(), store=args.store, settings={})
    reply_for = expected_reply()
    namespace = stack.enter_context(broker_namespace(args.redis_url))
    store = stack.enter_context(empty_store(args.store, folder, args.postgres_url))
    wechat = stack.enter_context(TimedWeChatServer())
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    token = secrets.token_hex(16)
    env = outreach_env(folder, store.url, args.redis_url, namespace, wechat, token, base_url)
    settings = load_settings(env)
    figures.store = store.describe()

    log(f"importing {args.customers:,} customers with WeChat openids ...")
    setup_start = time.perf_counter()
    people = write_people(folder / "customers.csv", args.customers)
    summary = import_customers(store.engine, folder / "customers.csv", settings)
    if summary.created != args.customers:
        raise RuntimeError(f"import created {summary.created} customers, expected {args.customers}")
    store.analyze()
    pushes = sign_pushes(token, people, args.plain, args.complaints)
    figures.expected_inbound_rows = pushes.inbound_rows
    figures.setup_seconds = time.perf_counter() - setup_start
    figures.settings = {
        "customers": args.customers,
        "complaints": args.complaints,
        "redelivered": pushes.redelivered,
        "plain_pushes": args.plain,
        "warmup": f"{WARMUP} complaints + {WARMUP} plain pushes, replies awaited",
        "client_threads": args.clients,
        "server": "uvicorn thread in this process" if args.server == "thread" else "`outreach serve` subprocess",
        "workers": f"outreach worker --processes {args.processes} --threads {args.threads}",
        "broker": f"{args.redis_url} namespace {namespace}",
        "batch_size": settings.batch_size,
        "campaign": str(CAMPAIGN_FILE.relative_to(ROOT)),
    }

    log(f"starting the app ({args.server}) and `outreach worker --processes {args.processes} "
        f"--threads {args.threads}` ...")  # fmt: skip
    services = stack.enter_context(
        app_and_workers(args.server, settings, env, port, folder, args.processes, args.threads)
    )
    workers = services.workers
    meter = CpuMeter({"serve": services.serve_pid, "workers": workers.pid}, store.postgres_database)

    log("warming up ...")
    warm = http_load.from_threads(base_url, pushes.warm_complaints + pushes.warm_plain, args.clients)
    if any(answer_label(a) != "200 success" for a in warm):
        raise RuntimeError(f"warm-up answers: {Counter(answer_label(a) for a in warm)}")
    if not wait_for_replies(wechat, [p.openid for p in pushes.warm_complaints], STARTUP_TIMEOUT, workers):
        raise RuntimeError(f"no reply to the warm-up complaints after {STARTUP_TIMEOUT:.0f} s:\n{workers.tail()}")
    wait_for_ledger(store.engine, CAMPAIGN_ID, 30)

    if pushes.plain:
        log(f"{len(pushes.plain):,} plain pushes (no trigger matches) from {args.clients} client threads ...")
        before = meter.read()
        figures.plain = Posted.of(http_load.from_threads(base_url, pushes.plain, args.clients), meter.since(before))

    log(f"{args.complaints:,} complaints (+{pushes.redelivered:,} redelivered) from {args.clients} client "
        "threads ...")  # fmt: skip
    before = meter.read()
    sent = http_load.from_threads(base_url, pushes.complaints, args.clients)
    log("waiting for the replies ...")
    all_arrived = wait_for_replies(wechat, pushes.complainers, args.timeout, workers)
    figures.complaints = Posted.of(sent, meter.since(before))
    if not all_arrived:
        figures.problems.append(f"not every complaint had a reply after {args.timeout:.0f} s")
    wait_for_ledger(store.engine, CAMPAIGN_ID, 30)
    time.sleep(SETTLE_SECONDS)  # a second reply to a redelivered complaint would arrive by now

    record_replies(figures, sent, pushes, wechat, reply_for, {p.openid: p.name for p in people})
    record_store(figures, store.engine)
    check(figures, args.complaints + WARMUP)
    return figures


if __name__ == "__main__":
    sys.exit(run_benchmark(sys.argv[1:], __doc__, parse_args, measure, table))
