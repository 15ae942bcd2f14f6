"""Two `outreach scheduler` processes: one acts, the other stands by and takes over when the first is killed
(the leader lock passes to it and its ticks fire the schedule); a campaign file that stops validating keeps
its last good version."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.journeys.leader import LOCK_KEY, FileLock, leader_lock
from outreach.store.database import make_engine
from outreach.store.schema import campaign_runs, deliveries

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CAMPAIGN = """\
id: heartbeat
name: Heartbeat notice
purpose: service
schedule: {every: 2s}
steps:
  - id: ping
    channel: sms
    content: {sms: "ping {{ name }}"}
"""


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def lock_holder(engine: Engine) -> object:
    """Who holds the scheduler's leader lock now, or None if nobody does.

    SQLite: the pid the holder wrote into the lock file, when the file is locked (tried without blocking, and
    let go at once). PostgreSQL: the server process (backend pid) of the session holding the advisory lock.
    """
    lock = leader_lock(engine)
    if isinstance(lock, FileLock):
        with lock.path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                return int(handle.read().strip())
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    query = sa.text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = :k"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with engine.connect() as conn:
        holders = list(conn.execute(query, {"k": LOCK_KEY}).scalars())
    assert len(holders) <= 1, holders
    return holders[0] if holders else None


def fired(log: Path) -> set[str]:
    """The occurrences a scheduler's log says it fired."""
    return set(re.findall(r"fired heartbeat occurrence (\S+)", log.read_text()))


def test_standby_takes_over_and_nothing_is_planned_twice(tmp_path: Path, store_url: str) -> None:
    """On SQLite the lock is a file lock; on PostgreSQL an advisory lock.

    The takeover is shown, not timed: the lock held by the first scheduler is held by another after the kill
    (on SQLite: by the second's pid), and the occurrences planned after the kill are the ones the second
    scheduler's log says it fired. A standby that never took over, or took the lock without ticking, fails.
    """
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    env = {
        **os.environ,
        "OUTREACH_DATABASE_URL": store_url,
        "OUTREACH_CONFIG": str(tmp_path / "missing.toml"),
        "OUTREACH_CAMPAIGNS_DIR": str(campaigns),
        "OUTREACH_OUTBOX_DIR": str(tmp_path / "outbox"),
        "OUTREACH_SCHEDULER_INTERVAL": "0.5",
        "OUTREACH_SCHEDULER_LOCK_TTL": "1",
    }
    (tmp_path / "customers.csv").write_text("id,name,phone\nh1,Ann,+14155550401\nh2,Ben,+14155550402\n")
    subprocess.run([OUTREACH, "customers", "import", str(tmp_path / "customers.csv")], env=env, check=True)
    (campaigns / "heartbeat.yaml").write_text(CAMPAIGN)
    engine = make_engine(store_url)

    def occurrences() -> list[str]:
        with engine.connect() as conn:
            query = sa.select(campaign_runs.c.occurrence).where(campaign_runs.c.status == "planned")
            return sorted(conn.execute(query).scalars())

    logs: list[IO[Any]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        logs.append(log)
        return subprocess.Popen([OUTREACH, "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT)

    first = start("first")
    second = None
    try:
        wait_for(lambda: len(occurrences()) >= 2, 60, "the first scheduler to fire")
        second = start("second")
        wait_for(lambda: "standing by" in (tmp_path / "second.log").read_text(), 30, "the standby")
        holder_before = lock_holder(engine)
        assert holder_before is not None
        if store_url.startswith("sqlite"):
            assert holder_before == first.pid
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        before_kill = set(occurrences())
        wait_for(lambda: "took over" in (tmp_path / "second.log").read_text(), 30, "the takeover")
        wait_for(lambda: len(occurrences()) >= len(before_kill) + 2, 30, "the second scheduler to fire")
        # The lock changed hands, and what was planned since the kill is what the second scheduler fired.
        holder_after = lock_holder(engine)
        assert holder_after is not None and holder_after != holder_before
        if store_url.startswith("sqlite"):
            assert holder_after == second.pid
        since_kill = set(occurrences()) - before_kill
        wait_for(lambda: since_kill <= fired(tmp_path / "second.log"), 30, "the second's log of what it fired")
        assert not since_kill & fired(tmp_path / "first.log")

        # a broken edit: the last good version keeps firing
        (campaigns / "heartbeat.yaml").write_text(CAMPAIGN.replace("purpose: service", "purpose: sometimes"))
        wait_for(lambda: "does not validate" in (tmp_path / "second.log").read_text(), 30, "the reload")
        count = len(occurrences())
        wait_for(lambda: len(occurrences()) >= count + 2, 30, "firing after a broken edit")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        for log in logs:
            log.close()
    assert second is not None and second.returncode in (0, -signal.SIGTERM)
    second_log = (tmp_path / "second.log").read_text()
    assert "keeping the version loaded before (heartbeat)" in second_log
    assert "Traceback" not in second_log

    with engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.occurrence, deliveries.c.customer_id)).all()
    assert len(rows) == len(set(rows))  # no customer planned twice for one occurrence
    per_occurrence = {o: sum(1 for r in rows if r.occurrence == o) for o in occurrences()}
    assert set(per_occurrence.values()) == {2}
    engine.dispose()
