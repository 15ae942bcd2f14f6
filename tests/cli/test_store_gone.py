"""Commands that lose the store mid-run, through the real `outreach` command: a private PostgreSQL crashed
with `pg_ctl -m immediate` while `customers import` or `campaigns run` writes. Each ends with one `error:` line
naming the store (no traceback, no statement), exit 1; the rerun, once the store is back, completes without
a customer or a message twice."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from outreach.core.settings import Settings
from outreach.store.database import open_store
from outreach.store.schema import customers, deliveries
from tests.commands import OUTREACH, environment
from tests.private_postgres import PrivatePostgres, private_postgres

CUSTOMERS = 50_000
AUDIENCE = 30_000

CAMPAIGN = """\
id: statements
name: Statements
purpose: service
steps:
  - id: tell
    channel: email
    content:
      email: {subject: "Statement for {{ name }}", text: "Your statement is ready."}
"""


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        open_store(server.url).dispose()  # the schema exists: what the commands write is their own work
        yield server


def customers_file(folder: Path, n: int) -> Path:
    path = folder / f"customers-{n}.csv"
    rows = "".join(f"c{i:06d},Customer {i},c{i:06d}@example.com,yes\n" for i in range(n))
    path.write_text("id,name,email,consent_email\n" + rows, encoding="utf-8")
    return path


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def writing(url: str) -> bool:
    """Some other session has written in a transaction open for half a second (the import's one
    transaction, a planning chunk)."""
    return (
        scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
            "AND xact_start < now() - interval '500 milliseconds'",
        )
        > 0
    )


def planned_some(url: str) -> bool:
    """The first chunk of the campaign's ledger rows is committed."""
    return scalar(url, "SELECT count(*) FROM deliveries") > 0


def crashed_when(
    cluster: PrivatePostgres, argv: list[str], env: dict[str, str], progress: Callable[[str], bool]
) -> subprocess.CompletedProcess[str]:
    """Run the command; crash the store from another thread once `progress` shows it under way."""
    crashed = threading.Event()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def crash() -> None:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if progress(cluster.url):
                cluster.crash()
                crashed.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=crash, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate(timeout=600)
    watcher.join(30)
    assert crashed.is_set(), f"the command ended before the crash (exit {proc.returncode}):\n{stderr[-3000:]}"
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def one_error_line(result: subprocess.CompletedProcess[str], cluster: PrivatePostgres) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"the store postgresql://postgres@127.0.0.1:{cluster.port}/postgres" in errors[0]
    assert "SELECT" not in result.stderr and "INSERT" not in result.stderr  # no statement, no parameters
    return errors[0]


def test_an_import_that_loses_the_store_says_so_in_one_line_and_the_rerun_imports_all(
    cluster: PrivatePostgres, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    env = environment(make_settings(cluster.url))
    argv = [OUTREACH, "customers", "import", str(customers_file(tmp_path, CUSTOMERS))]
    failed = crashed_when(cluster, argv, env, writing)
    one_error_line(failed, cluster)
    cluster.start()
    engine = open_store(cluster.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one() == 0  # one transaction
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one() == CUSTOMERS
    finally:
        engine.dispose()


def test_a_campaign_run_that_loses_the_store_says_so_in_one_line_and_the_rerun_plans_each_once(
    cluster: PrivatePostgres,
    make_settings: Callable[..., Settings],
    redis_url: str,
    broker_namespace: str,
    tmp_path: Path,
) -> None:
    # The in-process broker (the embedded default): its worker threads deliver while the command plans, and
    # give up their held answers after two seconds of outage (spilled for the next sweep).
    env = environment(make_settings(cluster.url, record_retry_seconds=2.0))
    imported = subprocess.run(
        [OUTREACH, "customers", "import", str(customers_file(tmp_path, AUDIENCE))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert imported.returncode == 0, imported.stderr
    campaign = tmp_path / "statements.yaml"
    campaign.write_text(CAMPAIGN, encoding="utf-8")
    argv = [OUTREACH, "campaigns", "run", str(campaign)]
    failed = crashed_when(cluster, argv, env, planned_some)
    one_error_line(failed, cluster)
    cluster.start()
    # The rerun on Redis only plans and enqueues (no worker takes from this namespace): what is checked is
    # the ledger, which the broker does not change.
    rerun_env = {**env, "OUTREACH_BROKER_URL": redis_url, "OUTREACH_BROKER_NAMESPACE": broker_namespace}
    again = subprocess.run(argv, env=rerun_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    engine = open_store(cluster.url)
    try:
        with engine.connect() as conn:
            per_customer = sa.select(deliveries.c.customer_id, sa.func.count().label("n")).group_by(
                deliveries.c.customer_id
            )
            counts = [n for _, n in conn.execute(per_customer)]
    finally:
        engine.dispose()
    assert len(counts) == AUDIENCE and set(counts) == {1}
