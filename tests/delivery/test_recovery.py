"""Recovery for real: `outreach worker` processes on a real Redis broker, a real SMTP server and the Twilio-like
server, killed with SIGKILL mid-call, their broker wiped mid-campaign, their providers refusing for a while.
In every case the servers count what arrived: each customer gets each message exactly once, or, for an
`unknown` row under `on_unknown: hold`, nothing more until an operator replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from outreach.core.settings import Settings
from outreach.delivery.sweep import SweepReport, sweep
from outreach.store.database import open_store, utcnow
from outreach.store.ledger import Status, open_count
from outreach.store.schema import deliveries, events
from tests.commands import OUTREACH, environment
from tests.pipeline import Pipeline
from tests.services import free_port
from tests.smtp_server import RecordingHandler, SmtpServer
from tests.twilio_server import TwilioServer
from tests.web_server import WebServer
from workers.broker import running_workers


class GatedHandler(RecordingHandler):
    """Holds every DATA while `gate` is closed, so a test can act while a batch is in the middle of sending."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()  # a DATA is waiting at the closed gate

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        while not self.gate.is_set():
            self.held.set()
            await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """The real SMTP server, with a gate (open unless a test closes it)."""
    server = SmtpServer(free_port())
    gated = GatedHandler()
    server.handler = server.controller.handler = gated
    server.start()
    yield server
    gated.gate.set()
    server.stop()


@pytest.fixture
def recovery(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    twilio_server: TwilioServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """The engine on Redis with SMTP and Twilio; batches of 4 rows."""
    settings = make_settings(
        store_url,
        broker_url=redis_url,
        broker_namespace=broker_namespace,
        smtp_url=smtp_server.url,
        twilio_account_sid=twilio_server.account_sid,
        twilio_auth_token=twilio_server.auth_token,
        twilio_api_base=twilio_server.base_url,
        sms_from="+15005550006",
        whatsapp_from="outbox",
        public_url=f"http://127.0.0.1:{free_port()}",
        batch_size=4,
        max_attempts=20,  # transient failures in these tests never use up a row's attempts
        twilio_timeout=120.0,  # a slow answer is cut by the SIGKILL, not by the client
    )
    engine = open_store(store_url)
    folder = tmp_path / "work"
    folder.mkdir()
    with running_workers(settings, engine, start=False) as handle:
        yield Pipeline(settings, engine, handle, folder)
    engine.dispose()


class Workers:
    """`outreach worker` in its own process group (Dramatiq forks), logging to a file."""

    def __init__(self, settings: Settings, log: Path, processes: int = 1, threads: int = 2) -> None:
        env = environment(settings)
        env.update(
            TWILIO_ACCOUNT_SID=settings.twilio_account_sid or "",
            TWILIO_AUTH_TOKEN=settings.twilio_auth_token or "",
            OUTREACH_TWILIO_API_BASE=settings.twilio_api_base,
            OUTREACH_SMS_FROM=settings.sms_from or "",
            OUTREACH_WHATSAPP_FROM=settings.whatsapp_from or "outbox",
            OUTREACH_PUBLIC_URL=settings.public_url,
            OUTREACH_TWILIO_TIMEOUT=str(settings.twilio_timeout),
            OUTREACH_MAX_ATTEMPTS=str(settings.max_attempts),
        )
        self.env = env
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [OUTREACH, "worker", "--processes", str(processes), "--threads", str(threads)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"workers exited:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole group: no handler runs, nothing is acknowledged or recorded."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM: Dramatiq finishes what it is running and hands prefetched messages back."""
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.kill()


def sms_customers(n: int) -> str:
    return "id,name,phone,email,consent_sms,consent_email\n" + "".join(
        f"r{i:02d},Customer {i},+1415555{i:04d},r{i:02d}@example.com,yes,yes\n" for i in range(n)
    )


def campaign(campaign_id: str, channel: str, on_unknown: str = "hold") -> str:
    content = (
        f'sms: "{campaign_id}: your card for {{{{ name }}}} is on its way."'
        if channel == "sms"
        else f'email: {{subject: "{campaign_id} for {{{{ name }}}}", text: "Your statement is ready."}}'
    )
    return f"""
        id: {campaign_id}
        name: Notice {campaign_id}
        purpose: service
        on_unknown: {on_unknown}
        steps:
          - id: tell
            channel: {channel}
            content:
              {content}
    """


def wait_for(what: str, check: Callable[[], bool], workers: Workers | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if workers is not None:
            workers.alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def done(p: Pipeline, *campaign_ids: str) -> Callable[[], bool]:
    def check() -> bool:
        with p.engine.connect() as conn:
            return all(open_count(conn, c) == 0 for c in campaign_ids)

    return check


def by_status(p: Pipeline) -> Counter[str]:
    return Counter(r["status"] for r in p.rows())


def still_for(p: Pipeline, seconds: float) -> Callable[[], bool]:
    """True once every open row has sat still (enqueued or claimed) for more than `seconds` by the ledger's
    clock, so that a sweep with that limit sees all of them."""

    def check() -> bool:
        d = deliveries.c
        query = sa.select(sa.func.max(d.enqueued_at), sa.func.max(d.claimed_at)).where(
            d.status.in_([Status.QUEUED, Status.SENDING])
        )
        with p.engine.connect() as conn:
            latest = [t for t in conn.execute(query).one() if t is not None]
        return all((utcnow() - t).total_seconds() > seconds for t in latest)

    return check


def run_sweep_command(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [OUTREACH, "sweep", "--older-than", "1s", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def per_number(twilio_server: TwilioServer) -> Counter[str]:
    return Counter(m["to"] for m in twilio_server.accepted())


@pytest.mark.parametrize("on_unknown", ["hold", "resend"])
def test_sigkill_mid_call_then_sweep(
    recovery: Pipeline, twilio_server: TwilioServer, on_unknown: str, tmp_path: Path
) -> None:
    p = recovery
    p.import_csv(sms_customers(12))
    p.run(p.campaign(campaign("cards", "sms", on_unknown)), deliver=False)
    twilio_server.delay = 300  # Twilio takes the messages, then the answers hang
    workers = Workers(p.settings, tmp_path / "workers.log", threads=2)
    try:
        # Two batches of four in flight (one per thread); the third waits in the killed worker's prefetch.
        wait_for("8 requests at Twilio", lambda: len(twilio_server.accepted()) == 8, workers)
        wait_for("8 rows sending", lambda: by_status(p)[Status.SENDING] == 8, workers)
    finally:
        workers.kill()
    twilio_server.delay = 0
    assert by_status(p) == {Status.SENDING: 8, Status.QUEUED: 4}

    wait_for("the rows to be a second old", still_for(p, 1.0))
    counts = run_sweep_command(workers.env)
    resent = 8 if on_unknown == "resend" else 0
    expected = {"requeued": 4, "unstarted": 0, "unknown": 8, "resent": resent, "held": 8 - resent, "released": 0,
                "spilled": 0}  # fmt: skip
    assert counts == {"older_than": "1s", **expected}

    workers = Workers(p.settings, tmp_path / "workers.log")
    try:
        wait_for("the campaign to finish", done(p, "cards"), workers)
    finally:
        workers.stop()
    sent_twice = [to for to, n in per_number(twilio_server).items() if n == 2]
    assert sorted(per_number(twilio_server).values()) == [1] * (12 - resent) + [2] * resent
    if on_unknown == "resend":
        assert by_status(p) == {Status.SENT: 12}
        assert len(sent_twice) == 8  # the price of `resend`: Twilio had taken them the first time
        return
    assert by_status(p) == {Status.SENT: 4, Status.UNKNOWN: 8}

    # Twilio's status callback for one of the held messages settles it.
    with WebServer(p.settings):
        held = next(r for r in p.rows() if r["status"] == Status.UNKNOWN)
        [message] = twilio_server.sent_to(held["address"])
        assert message["status_callback"].endswith(f"?d={held['id']}")
        answer = twilio_server.report_status(message["sid"], "delivered")
        assert (answer.status_code, answer.text) == (200, "applied")
    row = p.rows(id=held["id"])[0]
    assert (row["status"], row["provider_message_id"]) == (Status.DELIVERED, message["sid"])
    assert by_status(p) == {Status.SENT: 4, Status.UNKNOWN: 7, Status.DELIVERED: 1}
    assert len(twilio_server.accepted()) == 12  # nothing more was sent


def test_wiped_broker_mid_campaign_then_sweep(
    recovery: Pipeline, smtp_server: SmtpServer, redis_url: str, broker_namespace: str, tmp_path: Path
) -> None:
    p = recovery
    gated: GatedHandler = smtp_server.handler  # type: ignore[assignment]
    p.import_csv(sms_customers(24))
    p.run(p.campaign(campaign("statements", "email")), deliver=False)  # six batches of four
    gated.gate.clear()
    workers = Workers(p.settings, tmp_path / "workers.log", threads=1)
    try:
        wait_for("the first batch at the SMTP server", gated.held.is_set, workers)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{broker_namespace}*"))  # this test's broker only, never anything else
        assert keys
        client.delete(*keys)
        gated.gate.set()
        workers.stop()
    finally:
        workers.kill()
    lost = by_status(p)[Status.QUEUED]
    # One batch was being sent and at most two were prefetched: the wipe took the rest.
    assert lost >= 12 and by_status(p)[Status.SENDING] == 0

    wait_for("the rows to be a second old", still_for(p, 1.0))
    counts = run_sweep_command(workers.env)
    assert counts == {
        "older_than": "1s",
        "requeued": lost,
        "unstarted": 0,
        "unknown": 0,
        "resent": 0,
        "held": 0,
        "released": 0,
        "spilled": 0,
    }
    workers = Workers(p.settings, tmp_path / "workers.log")
    try:
        wait_for("the campaign to finish", done(p, "statements"), workers)
    finally:
        workers.stop()
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [f"r{i:02d}@example.com" for i in range(24)]
    assert by_status(p) == {Status.SENT: 24}


def retries(p: Pipeline, campaign_id: str) -> int:
    with p.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(events.c.kind == "delivery.retry", events.c.campaign_id == campaign_id)
        return int(conn.execute(query).scalar_one())


def test_providers_refusing_for_a_while(
    recovery: Pipeline, smtp_server: SmtpServer, twilio_server: TwilioServer, tmp_path: Path
) -> None:
    p = recovery
    p.import_csv(sms_customers(12))
    smtp_server.handler.behaviour.data_failures = 6  # 451 4.3.0 for the next six messages, then accepted
    twilio_server.fail_next(5, 20429)
    workers = Workers(p.settings, tmp_path / "workers.log")
    try:
        p.run(p.campaign(campaign("mail", "email"), "mail.yaml"), deliver=False)
        p.run(p.campaign(campaign("sms-429", "sms"), "sms-429.yaml"), deliver=False)
        wait_for("the first campaigns to finish", done(p, "mail", "sms-429"), workers)
        twilio_server.fail_next(5, 20500)
        p.run(p.campaign(campaign("sms-500", "sms"), "sms-500.yaml"), deliver=False)
        wait_for("the last campaign to finish", done(p, "sms-500"), workers)
    finally:
        workers.stop()
    assert by_status(p) == {Status.SENT: 36}
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [f"r{i:02d}@example.com" for i in range(12)]
    bodies = Counter((m["to"], m["body"].split(":")[0]) for m in twilio_server.accepted())
    assert set(bodies.values()) == {1} and len(bodies) == 24
    answers = Counter(r.status for r in twilio_server.recorded())
    assert (answers[429], answers[500], answers[201]) == (5, 5, 24)
    # Every refusal was one retry of one row, and each went through at a later attempt.
    assert (retries(p, "mail"), retries(p, "sms-429"), retries(p, "sms-500")) == (6, 5, 5)
    assert sweep(p.engine, p.handle.transport, p.settings, timedelta(seconds=1), utcnow()) == SweepReport()


@pytest.fixture
def big_batches(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """The engine on Redis with SMTP, in batches of 100 rows as in production."""
    settings = make_settings(
        store_url, broker_url=redis_url, broker_namespace=broker_namespace, smtp_url=smtp_server.url, batch_size=100
    )
    engine = open_store(store_url)
    folder = tmp_path / "work"
    folder.mkdir()
    with running_workers(settings, engine, start=False) as handle:
        yield Pipeline(settings, engine, handle, folder)
    engine.dispose()


def test_sigkill_mid_campaign_leaves_unknown_only_what_was_in_flight(
    big_batches: Pipeline, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    p = big_batches
    processes, threads, total = 2, 4, 3000
    p.import_csv(
        "id,name,email,consent_email\n"
        + "".join(f"k{i:04d},Customer {i},k{i:04d}@example.com,yes\n" for i in range(total))
    )
    p.run(p.campaign(campaign("statements", "email")), deliver=False)  # 30 batches of 100
    received = smtp_server.handler.received
    workers = Workers(p.settings, tmp_path / "workers.log", processes=processes, threads=threads)
    try:
        wait_for(
            "a third of the campaign at the SMTP server", lambda: len(received) >= total // 3, workers, timeout=180
        )
    finally:
        workers.kill()  # mid-batch: every thread is between claim and its last result
    at_kill = by_status(p)
    arrived = Counter(m.rcpt_tos[0] for m in received)

    wait_for("the rows to be a second old", still_for(p, 1.0))
    counts = run_sweep_command(workers.env)
    # Each SMTP session is one message in flight per thread; its result is committed before the next starts.
    assert 0 < counts["unknown"] <= 2 * processes * threads, (at_kill, counts)
    assert counts["unstarted"] > 0  # the rest of the killed batches went back to the queue, not to `unknown`
    unknown = {r["address"] for r in p.rows(status=Status.UNKNOWN)}
    assert all(arrived[address] <= 1 for address in unknown)
    sent_at_kill = {r["address"] for r in p.rows(status=Status.SENT)}
    assert all(arrived[address] == 1 for address in sent_at_kill)  # nothing recorded sent that did not go

    workers = Workers(p.settings, tmp_path / "workers.log", processes=processes, threads=threads)
    try:
        wait_for("the campaign to finish", done(p, "statements"), workers, timeout=120)
    finally:
        workers.stop()
    final = by_status(p)
    assert final == {Status.SENT: total - counts["unknown"], Status.UNKNOWN: counts["unknown"]}
    arrived = Counter(m.rcpt_tos[0] for m in received)
    assert max(arrived.values()) == 1  # none doubled
    assert all(arrived[r["address"]] == 1 for r in p.rows(status=Status.SENT))  # none lost
