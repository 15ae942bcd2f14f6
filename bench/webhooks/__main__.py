"""Webhook benchmark: signed Twilio status callbacks and inbound SMS through `outreach serve`.

    .venv/bin/python -m bench.webhooks [--rows 20000] [--inbound 5000] [--workers 2] [--concurrency 64]
                                       [--database postgresql|sqlite] [--json-out PATH]

A fresh PostgreSQL database (dropped at the end) or a temporary SQLite file gets N ledger rows in status
`sent`, and `outreach serve --workers W` runs as a subprocess against it. An aiohttp client in this process
(keep-alive, C concurrent requests) posts one signed `delivered` callback per row, then M signed inbound SMS;
every signature is computed before the clock starts. The same client then runs against `raw_app` below, a
Starlette app served by uvicorn with the same worker count that reads the form and checks the signature but
touches no database: the raw limit of HTTP + form + signature on this machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bench import options
from bench.cpu import CpuMeter
from bench.processes import BIN, Running, base_settings, free_port, listen_args, outreach_command, server
from bench.report import Machine, Phase, log, problem_lines, publish
from bench.stores import Store, empty_store
from outreach.db import utcnow
from outreach.schema import customers, deliveries, events, inbound_messages
from outreach.web.bodies import BadRequest, parse_form, read_body
from outreach.web.twilio_hooks import INBOUND_PATH, STATUS_PATH

CALLBACK_CAMPAIGN = "bench-sms-notice"
SURVEY_CAMPAIGN = "bench-sms-survey"
REPLY_CAMPAIGN = "bench-sms-reply"
SURVEY_EXPECTS = {"survey": "nps", "attribute": "nps_score"}
# (body, what it is read as when the customer has an open NPS question, ... when they have none)
INBOUND_BODIES = (("9", "survey", "reply"), ("ok thanks", "reply", "reply"), ("STOP", "opt_out", "opt_out"))
OUR_NUMBER = "+14155550100"
ACCOUNT_SID = "AC" + "0" * 32
API_VERSION = "2010-04-01"
# Callbacks for a ledger id that does not exist ("unmatched"): they warm up every server process (code paths,
# the first database connection) before the clock starts and change nothing.
WARMUP_REQUESTS = 500
INSERT_CHUNK = 5_000
TWIML_MEDIA_TYPE = "application/xml"


# -- the raw app ----------------------------------------------------------------------------------------


def raw_app() -> Starlette:
    """What `outreach serve` does per request minus the database: read the body with the same limit, parse
    the form, check the signature over OUTREACH_PUBLIC_URL + path + query, answer like the real routes."""
    token = os.environ["TWILIO_AUTH_TOKEN"]
    public_url = os.environ["OUTREACH_PUBLIC_URL"].rstrip("/")
    limit = 65536

    async def signed(request: Request) -> dict[str, str]:
        body = await read_body(request, limit)
        form = parse_form(body, request.headers.get("content-type"))
        signature = request.headers.get("x-twilio-signature")
        url = public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not signature or not RequestValidator(token).validate(url, form, signature):
            raise BadRequest(403, "invalid X-Twilio-Signature")
        return form

    async def status(request: Request) -> Response:
        form = await signed(request)
        if not form.get("MessageSid") or not form.get("MessageStatus"):
            raise BadRequest(400, "missing MessageSid")
        return PlainTextResponse("applied")

    async def inbound(request: Request) -> Response:
        form = await signed(request)
        if not form.get("MessageSid") or not form.get("From"):
            raise BadRequest(400, "missing MessageSid")
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response />', media_type=TWIML_MEDIA_TYPE)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return PlainTextResponse(exc.message + "\n", status_code=exc.status)

    routes = [
        Route(STATUS_PATH, status, methods=["POST"]),
        Route(INBOUND_PATH, inbound, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={BadRequest: bad_request})


# -- figures --------------------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds spent during a phase by the client (this process), the server processes and the
    PostgreSQL backends of the benchmark's database (None where /proc does not show them)."""

    client: float = 0.0
    server: float = 0.0
    database: float | None = None

    def as_dict(self, items: int) -> dict[str, Any]:
        def per(seconds: float | None) -> float | None:
            return round(seconds / items * 1e6) if seconds is not None and items else None

        return {
            "client_seconds": round(self.client, 2),
            "server_seconds": round(self.server, 2),
            "database_seconds": round(self.database, 2) if self.database is not None else None,
            "server_us_per_request": per(self.server),
            "database_us_per_request": per(self.database),
        }


@dataclass
class Shot:
    """One batch of requests fired at a server."""

    phase: Phase
    answers: dict[str, int]  # HTTP status -> count; "error" for a request that got no answer
    wrong_bodies: int  # 200 answers whose body is not what the route must answer
    cpu: Cpu

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.phase.as_dict(),
            "answers": self.answers,
            "wrong_bodies": self.wrong_bodies,
            **self.cpu.as_dict(self.phase.items),
        }


@dataclass
class Figures:
    machine: Machine
    database: str
    rows: int
    inbound: int
    workers: int
    concurrency: int
    callbacks: Shot | None = None
    raw_callbacks: Shot | None = None
    replies: Shot | None = None
    raw_replies: Shot | None = None
    delivered_rows: int = 0
    delivered_events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    expected_kinds: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def shot(s: Shot | None) -> dict[str, Any] | None:
            return s.as_dict() if s else None

        return {
            "machine": self.machine.as_dict(self.database),
            "rows": self.rows,
            "inbound": self.inbound,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "status_callbacks": shot(self.callbacks),
            "raw_status_callbacks": shot(self.raw_callbacks),
            "callbacks_fraction_of_raw": _ratio(self.callbacks, self.raw_callbacks),
            "inbound_replies": shot(self.replies),
            "raw_inbound": shot(self.raw_replies),
            "inbound_fraction_of_raw": _ratio(self.replies, self.raw_replies),
            "ledger_delivered_rows": self.delivered_rows,
            "delivered_events": self.delivered_events,
            "inbound_kinds": self.kinds,
            "expected_inbound_kinds": self.expected_kinds,
            "setup_seconds": round(self.setup_seconds, 1),
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }


def _ratio(real: Shot | None, raw: Shot | None) -> float | None:
    if real is None or raw is None or raw.phase.rate == 0:
        return None
    return round(real.phase.rate / raw.phase.rate, 4)


# -- data -----------------------------------------------------------------------------------------------


def _sid(prefix: str, n: int) -> str:
    return f"SM{prefix}{n:030x}"


def _phone(prefix: str, n: int) -> str:
    return f"+86{prefix}{n:08d}"


def _customer(customer_id: str, phone: str, now: Any) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": f"Customer {customer_id}",
        "phone": phone,
        "country": "CN",
        "locale": "en",
        "attributes": {},
        "created_at": now,
        "updated_at": now,
    }


def _ledger_row(
    campaign: str, customer_id: str, phone: str, sid: str, sent_at: Any, expects: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "idempotency_key": f"{campaign}:bench:sms:{customer_id}:sms",
        "campaign_id": campaign,
        "occurrence": "bench",
        "step_id": "sms",
        "customer_id": customer_id,
        "channel": "sms",
        "purpose": "service",
        "status": "sent",
        "address": phone,
        "body": "Your card ending 1234 was used for CNY 88.00. Reply 0-10: how likely are you to recommend us?",
        "sms_segments": 1,
        "expects": expects,
        "attempts": 1,
        "provider": "twilio",
        "provider_message_id": sid,
        "sent_at": sent_at,
        "created_at": sent_at,
        "updated_at": sent_at,
    }


def _insert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), INSERT_CHUNK):
            conn.execute(table.insert(), rows[start : start + INSERT_CHUNK])


def seed(store: Store, rows: int, inbound: int) -> tuple[list[tuple[int, str, str]], list[str]]:
    """The ledger rows the callbacks settle as (id, provider sid, phone), and the phones of the `inbound`
    senders."""
    now = utcnow()
    sent_at = now - timedelta(minutes=10)
    people = [_customer(f"b{i:07d}", _phone("139", i), now) for i in range(rows)]
    ledger = [
        _ledger_row(CALLBACK_CAMPAIGN, p["id"], p["phone"], _sid("b", i), sent_at, None) for i, p in enumerate(people)
    ]
    # Inbound senders: one customer per message; the even ones were asked an NPS question 10 minutes ago,
    # the odd ones got a plain message they may answer.
    senders = [_customer(f"r{i:07d}", _phone("138", i), now) for i in range(inbound)]
    asked = [
        _ledger_row(
            SURVEY_CAMPAIGN if i % 2 == 0 else REPLY_CAMPAIGN,
            p["id"],
            p["phone"],
            _sid("r", i),
            sent_at,
            SURVEY_EXPECTS if i % 2 == 0 else None,
        )
        for i, p in enumerate(senders)
    ]
    _insert(store.engine, customers, people + senders)
    _insert(store.engine, deliveries, ledger + asked)
    with store.engine.connect() as conn:
        settled = [
            (int(r.id), str(r.provider_message_id), str(r.address))
            for r in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.provider_message_id, deliveries.c.address)
                .where(deliveries.c.campaign_id == CALLBACK_CAMPAIGN)
                .order_by(deliveries.c.id)
            )
        ]
    store.analyze()
    return settled, [s["phone"] for s in senders]


# -- requests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A request ready to post: the path with its query, the form body and its signature."""

    path: str
    body: bytes
    signature: str


def sign(validator: RequestValidator, public_url: str, path: str, params: dict[str, str]) -> Signed:
    return Signed(path, urlencode(params).encode(), validator.compute_signature(public_url + path, params))


def status_requests(validator: RequestValidator, public_url: str, rows: list[tuple[int, str, str]]) -> list[Signed]:
    out = []
    for row_id, sid, phone in rows:
        params = {
            "SmsSid": sid,
            "SmsStatus": "delivered",
            "MessageStatus": "delivered",
            "To": phone,
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": OUR_NUMBER,
            "ApiVersion": API_VERSION,
        }
        out.append(sign(validator, public_url, f"{STATUS_PATH}?d={row_id}", params))
    return out


def warmup_requests(validator: RequestValidator, public_url: str, count: int) -> list[Signed]:
    return status_requests(validator, public_url, [(0, _sid("w", i), OUR_NUMBER) for i in range(count)])


def inbound_requests(
    validator: RequestValidator, public_url: str, phones: list[str]
) -> tuple[list[Signed], dict[str, int]]:
    """One message per sender (the even ones have an open NPS question), and the kinds they must be filed as."""
    out = []
    expected: Counter[str] = Counter()
    for i, phone in enumerate(phones):
        body, if_asked, otherwise = INBOUND_BODIES[i % len(INBOUND_BODIES)]
        expected[if_asked if i % 2 == 0 else otherwise] += 1
        sid = "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "CN",
            "To": OUR_NUMBER,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": phone,
            "ApiVersion": API_VERSION,
        }
        out.append(sign(validator, public_url, INBOUND_PATH, params))
    return out, dict(expected)


# -- the client -----------------------------------------------------------------------------------------


@dataclass
class Answers:
    seconds: float
    statuses: Counter[str]
    wrong_bodies: int


async def _fire(base_url: str, requests: list[Signed], concurrency: int, expect: str) -> Answers:
    """Post every request, `concurrency` at a time over keep-alive connections; `expect` is what a 200 answer's
    body must be (the exact text) or contain ("<Response" for TwiML)."""
    import aiohttp
    from yarl import URL

    prepared = [(URL(base_url + r.path, encoded=True), r.body, r.signature) for r in requests]
    statuses: Counter[str] = Counter()
    wrong = 0
    work = iter(prepared)
    base_headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
    exact = not expect.startswith("<")

    async def run_one(session: aiohttp.ClientSession) -> None:
        nonlocal wrong
        for url, body, signature in work:
            try:
                async with session.post(url, data=body, headers={**base_headers, "X-Twilio-Signature": signature}) as r:
                    text = await r.text()
                    statuses[str(r.status)] += 1
                    if r.status == 200 and (text != expect if exact else expect not in text):
                        wrong += 1
            except (TimeoutError, aiohttp.ClientError):
                statuses["error"] += 1

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        start = time.perf_counter()
        await asyncio.gather(*(run_one(session) for _ in range(min(concurrency, len(prepared)))))
        seconds = time.perf_counter() - start
    return Answers(seconds, statuses, wrong)


def fire(base_url: str, requests: list[Signed], concurrency: int, expect: str) -> Answers:
    factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_fire(base_url, requests, concurrency, expect))


# -- measuring ------------------------------------------------------------------------------------------


def measure(
    running: Running, database: str | None, base_url: str, requests: list[Signed], concurrency: int, expect: str
) -> Shot:
    meter = CpuMeter({"server": running.pid}, database)
    before = meter.read()
    answers = fire(base_url, requests, concurrency, expect)
    spent = meter.since(before)
    cpu = Cpu(spent.own, spent.trees["server"] or 0.0, spent.database)
    ok = answers.statuses.get("200", 0)
    return Shot(Phase(ok, answers.seconds), dict(sorted(answers.statuses.items())), answers.wrong_bodies, cpu)


# -- checks ---------------------------------------------------------------------------------------------


def check_ledger(engine: Engine, figures: Figures) -> None:
    with engine.connect() as conn:
        figures.delivered_rows = conn.execute(
            sa.select(sa.func.count()).where(
                deliveries.c.campaign_id == CALLBACK_CAMPAIGN, deliveries.c.status == "delivered"
            )
        ).scalar_one()
        figures.delivered_events = conn.execute(
            sa.select(sa.func.count()).where(events.c.kind == "delivery.delivered")
        ).scalar_one()
        figures.kinds = {
            str(kind): int(n)
            for kind, n in conn.execute(
                sa.select(inbound_messages.c.kind, sa.func.count()).group_by(inbound_messages.c.kind)
            )
        }


def check(figures: Figures) -> None:
    p = figures.problems
    for name, shot in (
        ("status callbacks", figures.callbacks),
        ("raw status callbacks", figures.raw_callbacks),
        ("inbound", figures.replies),
        ("raw inbound", figures.raw_replies),
    ):
        if shot is None:
            continue
        expected = figures.rows if "callbacks" in name else figures.inbound
        if shot.phase.items != expected or set(shot.answers) != {"200"}:
            p.append(f"{name}: {expected:,} requests, answers {shot.answers}")
        if shot.wrong_bodies:
            p.append(f"{name}: {shot.wrong_bodies:,} answers of 200 with an unexpected body")
    if figures.callbacks is not None:
        if figures.delivered_rows != figures.rows:
            p.append(f"{figures.delivered_rows:,} ledger rows delivered, expected {figures.rows:,}")
        if figures.delivered_events != figures.rows:
            p.append(f"{figures.delivered_events:,} delivery.delivered events, expected {figures.rows:,}")
    if figures.replies is not None and figures.kinds != figures.expected_kinds:
        p.append(f"inbound messages filed as {figures.kinds}, expected {figures.expected_kinds}")


# -- report ---------------------------------------------------------------------------------------------


def table(figures: Figures) -> str:
    f = figures
    lines = [
        "outreach webhook benchmark",
        f.machine.line(),
        f"  database    {f.database}",
        f"  server      {f.workers} uvicorn worker(s); client: aiohttp, {f.concurrency} concurrent requests, "
        "keep-alive, one process",
        "",
        f"  {'phase':<34}{'requests':>10}{'seconds':>9}{'per second':>12}"
        f"{'CPU s: client':>15}{'server':>8}{'db':>7}{'server µs/req':>15}",
    ]

    def row(label: str, shot: Shot | None) -> None:
        if shot is None:
            return
        c = shot.cpu
        db = f"{c.database:>7.1f}" if c.database is not None else f"{'-':>7}"
        per = c.server / shot.phase.items * 1e6 if shot.phase.items else 0.0
        lines.append(
            f"  {label:<34}{shot.phase.items:>10,}{shot.phase.seconds:>9.1f}{shot.phase.rate:>12,.0f}"
            f"{c.client:>15.1f}{c.server:>8.1f}{db}{per:>15,.0f}"
        )

    row("status callbacks (outreach serve)", f.callbacks)
    row("  raw: form + signature, no db", f.raw_callbacks)
    if (r := _ratio(f.callbacks, f.raw_callbacks)) is not None:
        lines.append(f"  {'  callbacks / raw':<34}{'':>19}{r:>12.1%}")
    row("inbound SMS (outreach serve)", f.replies)
    row("  raw: form + signature, no db", f.raw_replies)
    if (r := _ratio(f.replies, f.raw_replies)) is not None:
        lines.append(f"  {'  inbound / raw':<34}{'':>19}{r:>12.1%}")
    lines.append("")
    if f.callbacks is not None:
        lines.append(
            f"  check: answers {f.callbacks.answers} (bodies not 'applied': {f.callbacks.wrong_bodies}), "
            f"ledger delivered {f.delivered_rows:,} of {f.rows:,}, delivery.delivered events {f.delivered_events:,}"
        )
    if f.replies is not None:
        lines.append(
            f"  check: answers {f.replies.answers} (not TwiML: {f.replies.wrong_bodies}), filed as "
            f"survey {f.kinds.get('survey', 0):,} / opt-out {f.kinds.get('opt_out', 0):,} / "
            f"reply {f.kinds.get('reply', 0):,} (expected {f.expected_kinds})"
        )
    lines.append(
        f"  setup (rows inserted, signatures computed): {f.setup_seconds:.0f} s; whole run: {f.total_seconds:.0f} s"
    )
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="ledger rows, one delivered callback each")
    parser.add_argument("--inbound", type=int, default=5_000, help="inbound SMS to post (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (`outreach serve --workers`)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once")
    options.add_store_kind(parser, "--database")
    options.add_postgres_url(parser)
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    options.require_at_least(parser, args, 1, "rows", "workers", "concurrency")
    options.require_at_least(parser, args, 0, "inbound")
    return args


def run(args: argparse.Namespace) -> Figures:
    started = time.perf_counter()
    machine = Machine.now()
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
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
        raw = [str(BIN / "python"), "-m", "uvicorn", "bench.webhooks:raw_app", "--factory", *listen]
        raw += ["--no-access-log", "--log-level", "warning", "--no-server-header"]
        root = str(Path(__file__).resolve().parent.parent)
        raw_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        c = args.concurrency

        log(f"`outreach serve --workers {args.workers}`: {args.rows:,} status callbacks ...")
        with server(real, env, base_url, folder / "serve.log") as running:
            fire(base_url, warmup, c, "unmatched")
            figures.callbacks = measure(running, store.postgres_database, base_url, callbacks, c, "applied")
            if replies:
                log(f"`outreach serve --workers {args.workers}`: {len(replies):,} inbound SMS ...")
                figures.replies = measure(running, store.postgres_database, base_url, replies, c, "<Response")
        check_ledger(store.engine, figures)

        log(f"raw app, {args.workers} uvicorn worker(s): the same requests ...")
        with server(raw, raw_env, base_url, folder / "raw.log") as running:
            fire(base_url, warmup, c, "applied")
            figures.raw_callbacks = measure(running, None, base_url, callbacks, c, "applied")
            if replies:
                figures.raw_replies = measure(running, None, base_url, replies, c, "<Response")
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
