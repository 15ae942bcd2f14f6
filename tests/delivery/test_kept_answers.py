"""Answers a worker kept while the store was away, on SQLite and PostgreSQL: a round the committer tries
again after a commit whose answer was lost changes nothing more."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from outreach.channels.base import SendResult
from outreach.core.errors import TransientError
from outreach.delivery.batches import outgoing
from outreach.delivery.send_recorder import GroupCommitter, mark_started
from outreach.store.ledger import DeliveryRow, Status, claim
from outreach.store.schema import events
from tests.delivery.test_sweep import lost
from tests.pipeline import Pipeline

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
