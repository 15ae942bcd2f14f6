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
import csv
import os
import queue
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import requests
import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlalchemy.engine import Engine

from bench import options
from bench.cpu import CpuMeter, Spent
from bench.processes import (
    Running,
    app_in_thread,
    base_settings,
    broker_settings,
    free_port,
    listen_args,
    outreach_command,
    outreach_workers,
    server,
)
from bench.report import Latencies, Machine, log, per_second, problem_lines, publish
from bench.stores import broker_namespace, empty_store
from outreach.config import load_settings
from outreach.importer import import_customers
from outreach.ledger import open_count
from outreach.schema import deliveries, inbound_messages
from outreach.web.wechat_hooks import PATH as WECHAT_PATH
from outreach.web.wechat_hooks import signature_for
from tests.wechat_server import WeChatServer, new_openid

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_FILE = ROOT / "campaigns" / "complaint-ack.yaml"
OUR_ACCOUNT = "gh_bank0123456"
COMPLAINTS = (
    "我要投诉,信用卡被多扣款",
    "投诉:ATM吞卡",
    "I want to complain about the annual fee",
    "对服务很不满,要投诉",
)
PLAIN = ("你好,请问周六营业吗?", "谢谢", "What are your opening hours?", "我的信用卡额度是多少")
REDELIVER_EVERY = 10
# Warm-up before any clock starts: this many complaints and plain pushes from customers of their own, and every
# complaint's reply awaited (the workers have started, the WeChat token is cached, the code paths are loaded).
WARMUP = 10
STARTUP_TIMEOUT = 120.0
# After the last expected reply and an empty ledger: how long to keep watching for a second reply.
SETTLE_SECONDS = 3.0
POLL_SECONDS = 0.02


# -- the WeChat API, with arrival times --------------------------------------------------------------------


class TimedWeChatServer(WeChatServer):
    """tests/wechat_server.py's server, noting when each accepted message arrived (time.perf_counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = {}

    def _send(self, query: dict[str, str], raw: bytes) -> tuple[Any, dict[str, Any]]:
        body, payload = super()._send(query, raw)
        if payload.get("errcode") == 0 and isinstance(body, dict):
            now = time.perf_counter()
            with self.lock:
                self.arrivals.setdefault(str(body["touser"]), []).append(now)
        return body, payload

    def __enter__(self) -> TimedWeChatServer:
        self.start()
        return self

    def arrived(self) -> dict[str, list[float]]:
        with self.lock:
            return {k: list(v) for k, v in self.arrivals.items()}

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


# -- figures -----------------------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds during a phase: this process (client threads, the app's uvicorn thread in `--server thread`,
    the WeChat server), the `outreach serve` subprocess (`--server process`), the workers, and the PostgreSQL
    backends of the benchmark's database (None where /proc does not show them)."""

    bench: float
    serve: float | None
    workers: float
    database: float | None

    @classmethod
    def of(cls, spent: Spent) -> Cpu:
        return cls(spent.own, spent.trees["serve"], spent.trees["workers"] or 0.0, spent.database)


@dataclass
class Phase:
    requests: int
    seconds: float  # first POST to last answer
    answers: dict[str, int]  # "200 success", or the status and body start of anything else
    webhook: Latencies | None
    cpu: Cpu

    @property
    def rate(self) -> float:
        return per_second(self.requests, self.seconds)


@dataclass
class Figures:
    machine: Machine
    store: str
    settings: dict[str, Any]
    load_at_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    plain: Phase | None = None
    complaints: Phase | None = None
    redeliveries: Latencies | None = None  # webhook answer of the second push of a redelivered complaint
    reply: Latencies | None = None  # first POST of a complaint -> its reply accepted by the WeChat API
    replies_seconds: float = 0.0  # first complaint POST -> last reply arrival
    replies: int = 0
    reply_counts: dict[int, int] = field(default_factory=dict)  # replies per complaint -> complaints
    wrong_content: int = 0
    plain_replied: int = 0
    ledger: dict[str, int] = field(default_factory=dict)
    inbound_rows: int = 0
    expected_inbound_rows: int = 0
    setup_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def replies_per_second(self) -> float:
        return per_second(self.replies, self.replies_seconds)

    def as_dict(self) -> dict[str, Any]:
        def lat(x: Latencies | None) -> dict[str, float] | None:
            return {k: round(v, 1) for k, v in vars(x).items()} if x else None

        def phase(p: Phase | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {
                "requests": p.requests,
                "seconds": round(p.seconds, 3),
                "per_second": round(p.rate, 1),
                "answers": p.answers,
                "webhook_ms": lat(p.webhook),
                "cpu_seconds": {k: (round(v, 2) if v is not None else None) for k, v in vars(p.cpu).items()},
            }

        return {
            "machine": {
                "cpus": self.machine.cpus,
                "python": self.machine.python,
                "store": self.store,
                "load_average_at_start": self.machine.load_at_start,
                "load_average_at_end": self.load_at_end,
            },
            "settings": self.settings,
            "plain_pushes": phase(self.plain),
            "complaints": phase(self.complaints),
            "redelivered_webhook_ms": lat(self.redeliveries),
            "post_to_reply_ms": lat(self.reply),
            "replies": self.replies,
            "replies_seconds": round(self.replies_seconds, 3),
            "replies_per_second": round(self.replies_per_second, 1),
            "replies_per_complaint": {str(k): v for k, v in sorted(self.reply_counts.items())},
            "wrong_content": self.wrong_content,
            "plain_pushes_replied": self.plain_replied,
            "ledger_complaint_ack": self.ledger,
            "inbound_rows": self.inbound_rows,
            "expected_inbound_rows": self.expected_inbound_rows,
            "setup_seconds": round(self.setup_seconds, 1),
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }


# -- data --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    openid: str


_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超")


def write_people(path: Path, count: int) -> list[Person]:
    people = [
        Person(f"w{i:07d}", _SURNAMES[i % len(_SURNAMES)] + _GIVEN[(i // 7) % len(_GIVEN)], new_openid())
        for i in range(count)
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "wechat_openid", "locale"])
        writer.writerows([p.id, p.name, p.openid, "zh-CN"] for p in people)
    return people


@dataclass(frozen=True)
class Push:
    """A signed WeChat XML push, ready to post (signature computed before any clock starts)."""

    openid: str
    query: str
    body: bytes
    complaint: bool
    redelivery: bool = False


class MsgIds:
    def __init__(self) -> None:
        self._next = 24_680_135_792_468_000

    def __call__(self) -> str:
        self._next += 1
        return str(self._next)


def push(token: str, person: Person, text: str, msg_id: str, complaint: bool) -> Push:
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    query = urlencode({"signature": signature_for(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce})
    fields = {"ToUserName": OUR_ACCOUNT, "FromUserName": person.openid, "CreateTime": timestamp, "MsgType": "text",
              "Content": text, "MsgId": msg_id}  # fmt: skip
    body = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"
    return Push(person.openid, query, body.encode("utf-8"), complaint)


def expected_reply(campaign: dict[str, Any]) -> Callable[[str], str]:
    """The WeChat text the campaign's first step renders for a customer's name."""
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        campaign["steps"][0]["content"]["wechat"]
    )
    return lambda name: template.render(name=name)


# -- the client --------------------------------------------------------------------------------------------


@dataclass
class Sent:
    push: Push
    started: float
    answered: float
    answer: str  # "200 success" or what came instead


def fire(base_url: str, pushes: list[Push], clients: int) -> list[Sent]:
    """Post the pushes in order from `clients` threads (each with a keep-alive session): a push is taken by the
    next free thread, so a redelivery placed right after its original goes out nearly at the same time."""
    todo: queue.SimpleQueue[Push] = queue.SimpleQueue()
    for p in pushes:
        todo.put(p)
    url = base_url + WECHAT_PATH + "?"

    def client() -> list[Sent]:
        out: list[Sent] = []
        with requests.Session() as session:
            while True:
                try:
                    p = todo.get_nowait()
                except queue.Empty:
                    return out
                started = time.perf_counter()
                try:
                    r = session.post(url + p.query, data=p.body, headers={"Content-Type": "text/xml"}, timeout=60)
                    answer = f"{r.status_code} {r.text.strip()[:40]}"
                except requests.RequestException as exc:
                    answer = f"error {type(exc).__name__}"
                out.append(Sent(p, started, time.perf_counter(), answer))

    with ThreadPoolExecutor(clients, thread_name_prefix="bench-client") as pool:
        results = [f.result() for f in [pool.submit(client) for _ in range(clients)]]
    return sorted((s for r in results for s in r), key=lambda s: s.started)


# -- waiting ---------------------------------------------------------------------------------------------


def wait_for_replies(wechat: TimedWeChatServer, openids: list[str], timeout: float, workers: Running) -> bool:
    """Until each openid has at least one reply; False after `timeout` seconds."""
    wanted = set(openids)
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 5
    while True:
        arrived = wechat.arrived()
        missing = sum(1 for o in wanted if not arrived.get(o))
        if not missing:
            return True
        workers.check_running()
        now = time.monotonic()
        if now > deadline:
            return False
        if now > next_report:
            log(f"  waiting for {missing:,} of {len(wanted):,} replies ...")
            next_report = now + 5
        time.sleep(POLL_SECONDS)


def wait_for_ledger(engine: Engine, campaign_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if open_count(conn, campaign_id) == 0:
                return
        time.sleep(0.2)


def phase_of(sent: list[Sent], cpu: Cpu) -> Phase:
    answers = Counter(s.answer for s in sent)
    seconds = max(s.answered for s in sent) - min(s.started for s in sent) if sent else 0.0
    latencies = [s.answered - s.started for s in sent if not s.push.redelivery]
    return Phase(len(sent), seconds, dict(sorted(answers.items())), Latencies.of(latencies), cpu)


# -- the run -------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Figures:
    started = time.perf_counter()
    figures = Figures(machine=Machine.now(), store=args.store, settings={})
    campaign = YAML(typ="safe").load(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    trigger = re.compile(campaign["trigger"]["inbound"]["match"], re.IGNORECASE)
    for text in PLAIN:
        if trigger.search(text):
            raise RuntimeError(f"the plain text {text!r} matches the trigger {trigger.pattern!r}")
    for text in COMPLAINTS:
        if not trigger.search(text):
            raise RuntimeError(f"the complaint {text!r} does not match the trigger {trigger.pattern!r}")
    reply_for = expected_reply(campaign)

    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        namespace = stack.enter_context(broker_namespace(args.redis_url))
        store = stack.enter_context(empty_store(args.store, folder, args.postgres_url))
        engine = store.engine
        wechat = stack.enter_context(TimedWeChatServer())
        campaigns_dir = folder / "campaigns"
        campaigns_dir.mkdir()
        shutil.copy(CAMPAIGN_FILE, campaigns_dir / CAMPAIGN_FILE.name)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        token = secrets.token_hex(16)
        outreach_env = {
            **base_settings(folder, store.url),
            **broker_settings(args.redis_url, namespace),
            "OUTREACH_CAMPAIGNS_DIR": str(campaigns_dir),
            "OUTREACH_TEMPLATES_DIR": str(folder / "templates"),
            "OUTREACH_OUTBOX_DIR": str(folder / "outbox"),
            "OUTREACH_PUBLIC_URL": base_url,
            "OUTREACH_WECHAT_APP_ID": wechat.app_id,
            "OUTREACH_WECHAT_APP_SECRET": wechat.app_secret,
            "OUTREACH_WECHAT_TOKEN": token,
            "OUTREACH_WECHAT_API_BASE": wechat.base_url + "/",
        }
        settings = load_settings(outreach_env)
        figures.store = store.describe()
        redelivered = len(range(0, args.complaints, REDELIVER_EVERY))
        figures.settings = {
            "customers": args.customers,
            "complaints": args.complaints,
            "redelivered": redelivered,
            "plain_pushes": args.plain,
            "warmup": f"{WARMUP} complaints + {WARMUP} plain pushes, replies awaited",
            "client_threads": args.clients,
            "server": "uvicorn thread in this process" if args.server == "thread" else "`outreach serve` subprocess",
            "workers": f"outreach worker --processes {args.processes} --threads {args.threads}",
            "broker": f"{args.redis_url} namespace {namespace}",
            "batch_size": settings.batch_size,
            "campaign": str(CAMPAIGN_FILE.relative_to(ROOT)),
        }

        log(f"importing {args.customers:,} customers with WeChat openids ...")
        setup_start = time.perf_counter()
        people = write_people(folder / "customers.csv", args.customers)
        summary = import_customers(engine, folder / "customers.csv", settings)
        if summary.created != args.customers:
            raise RuntimeError(f"import created {summary.created} customers, expected {args.customers}")
        store.analyze()
        name_of = {p.openid: p.name for p in people}
        # Customers: warm-up complaints, warm-up plain, plain pushes, complaints; each writes once.
        pool = iter(people)
        msg_id = MsgIds()
        warm_c = [push(token, next(pool), COMPLAINTS[i % len(COMPLAINTS)], msg_id(), True) for i in range(WARMUP)]
        warm_p = [push(token, next(pool), PLAIN[i % len(PLAIN)], msg_id(), False) for i in range(WARMUP)]
        plain = [push(token, next(pool), PLAIN[i % len(PLAIN)], msg_id(), False) for i in range(args.plain)]
        complaints: list[Push] = []
        for i in range(args.complaints):
            p = push(token, next(pool), COMPLAINTS[i % len(COMPLAINTS)], msg_id(), True)
            complaints.append(p)
            if i % REDELIVER_EVERY == 0:  # WeChat pushes again (same MsgId) when it thinks we did not answer
                complaints.append(Push(p.openid, p.query, p.body, True, redelivery=True))
        figures.expected_inbound_rows = 2 * WARMUP + args.plain + args.complaints
        figures.setup_seconds = time.perf_counter() - setup_start

        log(f"starting the app ({args.server}) and `outreach worker --processes {args.processes} "
            f"--threads {args.threads}` ...")  # fmt: skip
        serve_pid: int | None = None
        if args.server == "thread":
            stack.enter_context(app_in_thread(settings, port, STARTUP_TIMEOUT))
        else:
            command = outreach_command("serve", *listen_args(port, 1))
            serve_pid = stack.enter_context(server(command, outreach_env, base_url, folder / "serve.log")).pid
        workers = stack.enter_context(outreach_workers(outreach_env, folder, args.processes, args.threads))
        meter = CpuMeter({"serve": serve_pid, "workers": workers.pid}, store.postgres_database)

        log("warming up ...")
        warm = fire(base_url, warm_c + warm_p, args.clients)
        if any(s.answer != "200 success" for s in warm):
            raise RuntimeError(f"warm-up answers: {Counter(s.answer for s in warm)}")
        if not wait_for_replies(wechat, [p.openid for p in warm_c], STARTUP_TIMEOUT, workers):
            raise RuntimeError(f"no reply to the warm-up complaints after {STARTUP_TIMEOUT:.0f} s:\n{workers.tail()}")
        wait_for_ledger(engine, "complaint-ack", 30)

        if plain:
            log(f"{len(plain):,} plain pushes (no trigger matches) from {args.clients} client threads ...")
            before = meter.read()
            figures.plain = phase_of(fire(base_url, plain, args.clients), Cpu.of(meter.since(before)))

        log(f"{args.complaints:,} complaints (+{redelivered:,} redelivered) from {args.clients} client threads ...")
        before = meter.read()
        sent = fire(base_url, complaints, args.clients)
        log("waiting for the replies ...")
        complaint_ids = [p.openid for p in complaints if not p.redelivery]
        all_arrived = wait_for_replies(wechat, complaint_ids, args.timeout, workers)
        figures.complaints = phase_of(sent, Cpu.of(meter.since(before)))
        if not all_arrived:
            figures.problems.append(f"not every complaint had a reply after {args.timeout:.0f} s")
        wait_for_ledger(engine, "complaint-ack", 30)
        time.sleep(SETTLE_SECONDS)  # a second reply to a redelivered complaint would arrive by now

        # -- figures and checks
        arrived = wechat.arrived()
        first_post: dict[str, float] = {}
        for s in sent:
            first_post[s.push.openid] = min(first_post.get(s.push.openid, s.started), s.started)
        figures.redeliveries = Latencies.of([s.answered - s.started for s in sent if s.push.redelivery])
        reply_latencies, counts, last = [], Counter[int](), 0.0
        for openid in complaint_ids:
            times = arrived.get(openid, [])
            counts[len(times)] += 1
            if times:
                reply_latencies.append(times[0] - first_post[openid])
                last = max(last, times[0])
        figures.reply = Latencies.of(reply_latencies)
        figures.replies = len(reply_latencies)
        figures.replies_seconds = last - min(first_post.values()) if reply_latencies else 0.0
        figures.reply_counts = dict(sorted(counts.items()))
        wanted = set(complaint_ids)
        figures.wrong_content = sum(
            1 for m in wechat.accepted() if m["touser"] in wanted and m["content"] != reply_for(name_of[m["touser"]])
        )
        figures.plain_replied = sum(1 for p in warm_p + plain if arrived.get(p.openid))
        with engine.connect() as conn:
            figures.ledger = {
                str(status): int(n)
                for status, n in conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.campaign_id == "complaint-ack")
                    .group_by(deliveries.c.status)
                )
            }
            figures.inbound_rows = conn.execute(sa.select(sa.func.count()).select_from(inbound_messages)).scalar_one()
        check(figures, args.complaints + WARMUP)
        log("stopping and cleaning up ...")
    figures.load_at_end = os.getloadavg()
    figures.total_seconds = time.perf_counter() - started
    return figures


def check(f: Figures, acks: int) -> None:
    p = f.problems
    for name, phase in (("plain pushes", f.plain), ("complaints", f.complaints)):
        if phase is not None and set(phase.answers) != {"200 success"}:
            p.append(f"{name}: answers {phase.answers}")
    if set(f.reply_counts) != {1}:
        p.append(f"replies per complaint (replies: complaints): {f.reply_counts}")
    if f.wrong_content:
        p.append(f"{f.wrong_content:,} replies with a text other than the campaign's")
    if f.plain_replied:
        p.append(f"{f.plain_replied:,} plain pushes got a reply")
    if f.ledger != {"sent": acks}:
        p.append(f"complaint-ack ledger rows {f.ledger}, expected {{'sent': {acks}}}")
    if f.inbound_rows != f.expected_inbound_rows:
        p.append(f"{f.inbound_rows:,} inbound messages filed, expected {f.expected_inbound_rows:,}")


# -- report ------------------------------------------------------------------------------------------------


def table(f: Figures) -> str:
    s = f.settings
    lines = [
        "outreach auto-reply benchmark (campaigns/complaint-ack.yaml, WeChat)",
        f"  machine     {f.machine.describe()}; load average {' '.join(f'{x:.2f}' for x in f.machine.load_at_start)} "
        f"at start, {' '.join(f'{x:.2f}' for x in f.load_at_end)} at end",
        f"  store       {f.store}; broker {s['broker']}",
        f"  app         {s['server']}; {s['workers']}; batch size {s['batch_size']}",
        f"  load        {s['customers']:,} customers; {s['complaints']:,} complaints (+{s['redelivered']:,} "
        f"redelivered with the same MsgId) and {s['plain_pushes']:,} plain pushes, each from a different customer;",
        f"              {s['client_threads']} client threads (requests, keep-alive); WeChat API: "
        "tests/wechat_server.py in this process; warm-up first",
        "",
        f"  {'':<38}{'requests':>9}{'seconds':>9}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'CPU s: bench':>14}{'serve':>7}{'workers':>9}{'db':>6}",
    ]

    def cpu_cols(c: Cpu | None) -> str:
        if c is None:
            return ""
        serve = f"{c.serve:>7.1f}" if c.serve is not None else f"{'-':>7}"
        db = f"{c.database:>6.1f}" if c.database is not None else f"{'-':>6}"
        return f"{c.bench:>14.1f}{serve}{c.workers:>9.1f}{db}"

    def row(label: str, n: int, seconds: float, lat: Latencies | None, cpu: Cpu | None = None) -> None:
        rate = per_second(n, seconds)
        nums = f"{lat.p50_ms:>9.1f}{lat.p95_ms:>9.1f}{lat.max_ms:>9.1f}" if lat else f"{'-':>9}" * 3
        secs = f"{seconds:>9.2f}{rate:>8.0f}" if seconds else f"{'':>17}"
        lines.append(f"  {label:<38}{n:>9,}{secs}{nums}{cpu_cols(cpu)}")

    if f.plain is not None:
        row("plain pushes, webhook answer (limit)", f.plain.requests, f.plain.seconds, f.plain.webhook, f.plain.cpu)
    if f.complaints is not None:
        c = f.complaints
        row("complaints, webhook answer", c.requests, c.seconds, c.webhook, c.cpu)
        if f.redeliveries is not None:
            row("  redelivered push, webhook answer", f.redeliveries.count, 0.0, f.redeliveries)
        row("complaint POST -> reply at WeChat API", f.replies, f.replies_seconds, f.reply)
    if f.plain is not None and f.complaints is not None and f.plain.rate:
        lines.append(
            f"  complaint pushes per second / plain pushes per second: {f.complaints.rate / f.plain.rate:.1%}; "
            f"replies per second / plain pushes per second: {f.replies_per_second / f.plain.rate:.1%}"
        )
    lines.append(
        "  (requests per second: first POST to last answer, redeliveries included; replies per second: first "
        "complaint POST to last reply)"
    )
    lines.append("")
    counts = ", ".join(f"{k} repl{'y' if k == 1 else 'ies'}: {v:,}" for k, v in f.reply_counts.items())
    lines.append(f"  check: complaints by replies received: {counts} (exactly one expected, redelivered ones too)")
    lines.append(
        f"  check: webhook answers {f.complaints.answers if f.complaints else {}}"
        f"{f' / plain {f.plain.answers}' if f.plain else ''}; replies with a wrong text {f.wrong_content}; "
        f"plain pushes replied to {f.plain_replied}"
    )
    lines.append(
        f"  check: complaint-ack ledger {f.ledger} (warm-up included); inbound messages filed {f.inbound_rows:,} "
        f"of {f.expected_inbound_rows:,}"
    )
    lines.append(f"  setup (import, signatures): {f.setup_seconds:.1f} s; whole run: {f.total_seconds:.0f} s")
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.auto_reply", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000, help="customers imported, with WeChat openids")
    parser.add_argument("--complaints", type=int, default=500, help="complaints posted, each from its own customer")
    parser.add_argument("--plain", type=int, help="pushes that match no trigger (default: as many as complaints)")
    parser.add_argument("--clients", type=int, default=8, help="client threads posting the pushes")
    parser.add_argument("--processes", type=int, default=1, help="`outreach worker --processes`")
    parser.add_argument("--threads", type=int, default=8, help="`outreach worker --threads`")
    options.add_store_kind(parser, "--store")
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="thread",
        help="the app under uvicorn in a thread of this process, or `outreach serve` as a subprocess",
    )
    options.add_postgres_url(parser)
    options.add_redis_url(parser, "redis://127.0.0.1:6379/14")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the replies")
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    if args.plain is None:
        args.plain = args.complaints
    options.require_at_least(parser, args, 1, "complaints", "clients", "processes", "threads")
    options.require_at_least(parser, args, 0, "plain")
    needed = 2 * WARMUP + args.plain + args.complaints
    if args.customers < needed:
        parser.error(f"--customers must be at least {needed:,} (warm-up, plain pushes and complaints each need one)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    return publish(table(figures), figures, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
