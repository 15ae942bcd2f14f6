"""The store crashing under real `outreach worker` processes: a private PostgreSQL stopped with
`pg_ctl -m immediate` mid-campaign and started again. The workers keep the SMTP server's answers while it is
down and write them once it is back; past `record_retry_seconds` they spill them to a file that
`outreach sweep` applies. The SMTP server counts what arrived: every message once, none twice, also after
the documented replay of whatever ended `unknown`.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from outreach.core.settings import Settings
from outreach.delivery.spill import spill_files
from outreach.store.database import open_store
from outreach.store.ledger import Status
from tests.commands import OUTREACH
from tests.delivery.test_recovery import Workers, by_status, campaign, done, run_sweep_command, wait_for
from tests.pipeline import Pipeline
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.smtp_server import SmtpServer
from workers.broker import running_workers

PROCESSES, THREADS, TOTAL = 2, 4, 3000
# How long the store stays down in the first test: well within record_retry_seconds.
OUTAGE_SECONDS = 6.0


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


def outage_pipeline(
    cluster: PrivatePostgres,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
    **overrides: Any,
) -> Iterator[Pipeline]:
    """The engine on the private cluster and Redis with SMTP, in batches of 100 rows as in production; 3,000
    customers and a campaign planned for them, not yet delivered."""
    settings = make_settings(
        cluster.url,
        broker_url=redis_url,
        broker_namespace=broker_namespace,
        smtp_url=smtp_server.url,
        batch_size=100,
        **overrides,
    )
    engine = open_store(cluster.url)
    folder = tmp_path / "work"
    folder.mkdir()
    with running_workers(settings, engine, start=False) as handle:
        p = Pipeline(settings, engine, handle, folder)
        p.import_csv(
            "id,name,email,consent_email\n"
            + "".join(f"k{i:04d},Customer {i},k{i:04d}@example.com,yes\n" for i in range(TOTAL))
        )
        p.run(p.campaign(campaign("statements", "email")), deliver=False)  # 30 batches of 100
        yield p
    engine.dispose()


@pytest.fixture
def patient(
    cluster: PrivatePostgres,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """Workers that wait for the store as long as the default (60 s)."""
    yield from outage_pipeline(cluster, make_settings, smtp_server, redis_url, broker_namespace, tmp_path)


@pytest.fixture
def hasty(
    cluster: PrivatePostgres,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """Workers that wait for the store for one second only, then spill."""
    yield from outage_pipeline(
        cluster, make_settings, smtp_server, redis_url, broker_namespace, tmp_path, record_retry_seconds=1.0
    )


def arrived(smtp_server: SmtpServer) -> Counter[str]:
    return Counter(m.rcpt_tos[0] for m in smtp_server.handler.received)


def standing_still(p: Pipeline, seconds: float) -> Callable[[], bool]:
    """True once nothing is queued and no row of the ledger has changed status for `seconds`: every batch
    still running has ended (what is left `sending` belongs to no live worker)."""
    last: list[Any] = [None, time.monotonic()]

    def check() -> bool:
        now = by_status(p)
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return now[Status.QUEUED] == 0 and time.monotonic() - last[1] > seconds

    return check


def finish(p: Pipeline, workers: Workers) -> dict[str, Any] | None:
    """Wait for the campaign to finish. Should rows stay `sending` once the ledger stands still (a claim whose
    worker never heard back from the store), run the documented `outreach sweep --older-than 1s`, whose
    counts are returned, and wait again."""
    still = standing_still(p, 10.0)
    wait_for("the campaign to finish or stand still", lambda: done(p, "statements")() or still(), workers, 240)
    if done(p, "statements")():
        return None
    counts = run_sweep_command(workers.env)
    wait_for("the campaign to finish after the sweep", done(p, "statements"), workers, timeout=120)
    return counts


def replay_unknown(p: Pipeline, workers: Workers) -> None:
    """The documented way to deal with `unknown` rows: `outreach failures replay --status unknown --yes`."""
    result = subprocess.run(
        [OUTREACH, "failures", "replay", "--status", "unknown", "--yes", "--reason", "store outage"],
        env=workers.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    wait_for("the replay to finish", done(p, "statements"), workers, timeout=120)


def test_store_crash_mid_campaign_keeps_every_answer(
    patient: Pipeline, cluster: PrivatePostgres, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    p = patient
    received = smtp_server.handler.received
    workers = Workers(p.settings, tmp_path / "workers.log", processes=PROCESSES, threads=THREADS)
    try:
        wait_for("a third of the campaign at the SMTP server", lambda: len(received) >= TOTAL // 3, workers, 120)
        cluster.crash()
        at_crash = len(received)
        time.sleep(OUTAGE_SECONDS)
        during = len(received) - at_crash  # answers in flight at the crash, and no more (nothing new goes)
        cluster.start()
        swept = finish(p, workers)
        at_end = by_status(p)
        unknown = at_end[Status.UNKNOWN]
        # Every answer the workers held was written once the store was back: nothing sent went `unknown`.
        assert unknown <= PROCESSES * THREADS, (at_end, swept)
        assert at_end[Status.SENT] + unknown == TOTAL, at_end
        counts = arrived(smtp_server)
        assert all(counts[r["address"]] == 1 for r in p.rows(status=Status.SENT))  # recorded sent: went once
        assert max(counts.values()) == 1  # none doubled
        if unknown:
            replay_unknown(p, workers)
    finally:
        workers.stop()
    counts = arrived(smtp_server)
    assert max(counts.values()) == 1, ("doubled after the replay", unknown)
    assert by_status(p) == {Status.SENT: TOTAL}
    assert len(counts) == TOTAL  # none lost
    assert during <= PROCESSES * THREADS * 2, during  # while the store was down, only what was in flight went
    log = (tmp_path / "workers.log").read_text(errors="replace")
    assert "keeping" in log and "waiting for it" in log  # the workers said what they were doing


def test_store_down_past_the_bound_spills_and_the_sweep_applies(
    hasty: Pipeline, cluster: PrivatePostgres, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    p = hasty
    received = smtp_server.handler.received
    spill_dir = p.settings.spill_dir
    workers = Workers(p.settings, tmp_path / "workers.log", processes=PROCESSES, threads=THREADS)
    try:
        wait_for("a third of the campaign at the SMTP server", lambda: len(received) >= TOTAL // 3, workers, 120)
        cluster.crash()
        wait_for("a spill file", lambda: bool(spill_files(spill_dir)), workers)
        spilled_files = {path.name for path in spill_files(spill_dir)}
        cluster.start()
        # The rows of the spilled answers are still `sending` (the batches stopped): the sweep settles them
        # from the files, and queues again what those batches had not handed over yet.
        wait_for("the ledger to stand still", standing_still(p, 10.0), workers, 240)
        counts = run_sweep_command(workers.env)
        assert counts["spilled"] > 0, counts
        assert not spilled_files & {path.name for path in spill_files(spill_dir)}  # applied and deleted
        assert counts["unknown"] == 0, counts  # every answer held when the store went away was kept
        wait_for("the campaign to finish", done(p, "statements"), workers, timeout=180)
    finally:
        workers.stop()
    assert by_status(p) == {Status.SENT: TOTAL}
    delivered = arrived(smtp_server)
    assert max(delivered.values()) == 1  # none doubled
    assert len(delivered) == TOTAL  # none lost
    log = (tmp_path / "workers.log").read_text(errors="replace")
    assert "results spilled to" in log
