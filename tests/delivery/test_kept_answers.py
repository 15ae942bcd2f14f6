"""Answers written twice, and answers spilled to a file, on SQLite and PostgreSQL: a round the committer tries
again after a commit whose answer was lost changes nothing more, and a spill file settles exactly the rows
still `sending` or `unknown` under the claim its answers were sent under, through `outreach sweep` and at
the start of `outreach worker`."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from outreach.channels.base import SendResult
from outreach.core.errors import TransientError
from outreach.delivery.batches import outgoing
from outreach.delivery.send_recorder import GroupCommitter, mark_started
from outreach.delivery.spill import read_spill, spill, spill_files
from outreach.store.ledger import DeliveryRow, Status, claim
from outreach.store.schema import events
from tests.commands import OUTREACH, environment
from tests.delivery.test_recovery import Workers, wait_for
from tests.delivery.test_sweep import age, lost, set_rows
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

NAMES = {"email": "smtp"}


def handed_over(p: Pipeline) -> list[DeliveryRow]:
    """Six rows claimed and noted handed to the provider, as a worker leaves them mid-batch."""
    claimed = claim(p.engine, lost(p))
    with p.engine.begin() as conn:
        mark_started(conn, claimed)
    return claimed


def answers(p: Pipeline, rows: list[DeliveryRow]) -> list[SendResult]:
    """Sent, sent, tried again later, sent, sent, sent: what the SMTP server might have said."""
    results = [SendResult.sent(outgoing(row, p.settings), f"<{row['id']}@bank.example>") for row in rows]
    results[2] = SendResult.failed(outgoing(rows[2], p.settings), TransientError("451 try later", "451"))
    return results


def event_counts(p: Pipeline) -> Counter[str]:
    with p.engine.connect() as conn:
        return Counter(conn.execute(sa.select(events.c.kind).where(events.c.delivery_id.is_not(None))).scalars())


def test_a_round_written_again_after_a_lost_commit_answer_changes_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    rows = handed_over(p)
    results = answers(p, rows)
    committer = GroupCommitter(p.engine, p.settings)
    by_id = {row["id"]: row for row in rows}
    first = committer.submit(by_id, [], results, NAMES).result(timeout=30)
    after_first = (p.rows(), event_counts(p))
    # The same round again, as the committer does when the store drops the connection after the commit.
    again = committer.submit(by_id, [rows[0]["id"]], results, NAMES).result(timeout=30)
    assert (p.rows(), event_counts(p)) == after_first
    assert [r["status"] for r in p.rows()] == [Status.SENT] * 2 + [Status.QUEUED] + [Status.SENT] * 3
    # The row to try again is still named once each time: it is enqueued after the round that is answered.
    assert list(first.retry.by_delay.values()) == list(again.retry.by_delay.values()) == [[rows[2]["id"]]]
    assert again.going == set()  # a row no longer `sending` is not noted as going


def spilled_file(p: Pipeline, rows: list[DeliveryRow]) -> Path:
    path = spill(p.settings.spill_dir, answers(p, rows), {row["id"]: row for row in rows}, NAMES)
    assert spill_files(p.settings.spill_dir) == [path]
    assert [s.delivery_id for s in read_spill(path)] == [row["id"] for row in rows]
    return path


def sweep_command(p: Pipeline) -> dict[str, Any]:
    """`outreach sweep --older-than 5m --json`, which delivers in-process what it enqueues."""
    result = subprocess.run(
        [OUTREACH, "sweep", "--older-than", "5m", "--json"],
        env=environment(p.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_sweep_applies_spilled_answers_to_the_rows_still_under_their_claim(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    rows = handed_over(p)
    path = spilled_file(p, rows)
    ids = [row["id"] for row in rows]
    # Meanwhile the sweep gave two rows up (unknown), and one was replayed and claimed again by another worker.
    set_rows(p, ids[3:5], status=Status.UNKNOWN)
    set_rows(p, ids[5:], claim_token="another-claim")
    age(p, ids, 10, "claimed_at")
    swept = sweep_command(p)
    assert (swept["spilled"], swept["unknown"]) == (5, 1)  # the row claimed again is not the file's to settle
    assert not path.exists()
    # The transient answer put its row back in the queue, and the sweep's in-process worker sent it.
    assert [r["status"] for r in p.rows()] == [Status.SENT] * 5 + [Status.UNKNOWN]
    assert [m.rcpt_tos[0] for m in smtp_server.handler.received] == [rows[2]["address"]]
    assert p.rows(id=ids[0])[0]["provider_message_id"] == f"<{ids[0]}@bank.example>"
    assert event_counts(p)["delivery.sent"] == 5
    assert sweep_command(p)["spilled"] == 0


def test_a_worker_start_applies_spill_files_first(
    pipeline: Pipeline, smtp_server: SmtpServer, redis_url: str, broker_namespace: str, tmp_path: Path
) -> None:
    p = pipeline
    rows = handed_over(p)
    path = spilled_file(p, rows)
    settings = replace(p.settings, broker_url=redis_url, broker_namespace=broker_namespace)
    workers = Workers(settings, tmp_path / "workers.log", threads=1)
    try:
        # the row to try again is enqueued with its delay, and these workers send it
        wait_for("every row sent", lambda: {r["status"] for r in p.rows()} == {Status.SENT}, workers, 120)
    finally:
        workers.stop()
    assert not path.exists()
    assert [r["attempts"] for r in p.rows()] == [1, 1, 2, 1, 1, 1]
    assert [m.rcpt_tos[0] for m in smtp_server.handler.received] == [rows[2]["address"]]
    assert "spill files in" in (tmp_path / "workers.log").read_text()
