"""Real worker processes (`outreach worker`) on a real Redis broker, delivering to real servers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from outreach.core.settings import Settings
from outreach.store.database import open_store
from outreach.store.ledger import open_count
from tests.commands import OUTREACH, environment
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from workers.broker import running_workers

CUSTOMERS = "id,name,email,phone,consent_email,consent_sms\n" + "".join(
    f"w{i:03d},Customer {i},w{i:03d}@example.com,+1415555{i:04d},yes,yes\n" for i in range(40)
)
CAMPAIGN = """
    id: notice
    name: Service notice
    purpose: service
    steps:
      - id: tell
        channel: email
        content:
          email:
            subject: "Notice for {{ name }}"
            text: "Dear {{ name }}, your statement is ready."
"""


@pytest.fixture
def redis_pipeline(
    store_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    settings = make_settings(
        store_url, broker_url=redis_url, broker_namespace=broker_namespace, smtp_url=smtp_server.url, batch_size=7
    )
    engine = open_store(store_url)
    folder = tmp_path / "work"
    folder.mkdir()
    with running_workers(settings, engine, start=False) as handle:
        yield Pipeline(settings, engine, handle, folder)
    engine.dispose()


def start_workers(settings: Settings, processes: int = 2, threads: int = 2) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [OUTREACH, "worker", "--processes", str(processes), "--threads", str(threads)],
        env=environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: stop() reaches the worker children too
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the workers, SIGKILL them if they have not stopped in 30 s. Started in a session of their own,
    the whole process group is signalled, so no worker child outlives the test."""
    try:
        group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        group = False

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
    if group:
        send(signal.SIGKILL)  # any child the master left behind


def wait_until_done(p: Pipeline, campaign: str, proc: subprocess.Popen[Any], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with p.engine.connect() as conn:
            if open_count(conn, campaign) == 0:
                return
        if proc.poll() is not None:
            raise AssertionError(f"workers exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    raise AssertionError("workers did not finish in time")


def test_worker_processes_deliver_everything_once(redis_pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = redis_pipeline
    p.import_csv(CUSTOMERS)
    plan = p.run(p.campaign(CAMPAIGN), deliver=False)
    assert len(plan.row_ids) == 40
    # Dramatiq delivers at least once: hand the workers every batch a second time as well.
    p.handle.transport.enqueue(plan.row_ids[:20])
    p.handle.transport.enqueue(plan.row_ids[20:])
    proc = start_workers(p.settings)
    try:
        wait_until_done(p, "notice", proc)
    finally:
        stop(proc)
    received = smtp_server.handler.received
    assert len(received) == 40
    assert sorted(m.rcpt_tos[0] for m in received) == [f"w{i:03d}@example.com" for i in range(40)]
    assert {r["status"] for r in p.rows()} == {"sent"}


def test_campaigns_run_wait_returns_when_workers_are_done(redis_pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = redis_pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(CAMPAIGN)
    proc = start_workers(p.settings, processes=1)
    try:
        env = environment(p.settings)
        first = subprocess.run(
            [OUTREACH, "campaigns", "run", str(path), "--wait"], env=env, capture_output=True, timeout=120
        )
        assert first.returncode == 0, first.stderr.decode()
        assert len(smtp_server.handler.received) == 40
        again = subprocess.run(
            [OUTREACH, "campaigns", "run", str(path), "--wait"], env=env, capture_output=True, timeout=120
        )
        assert again.returncode == 0, again.stderr.decode()
        assert "already planned for this occurrence" in again.stdout.decode()
    finally:
        stop(proc)
    assert len(smtp_server.handler.received) == 40


def test_worker_refuses_the_in_process_broker(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    settings = replace(make_settings(sqlite_url), broker_url="stub://")
    result = subprocess.run([OUTREACH, "worker"], env=environment(settings), capture_output=True, timeout=60)
    assert result.returncode == 2
    assert "OUTREACH_BROKER_URL" in result.stderr.decode()
