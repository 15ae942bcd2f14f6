"""The ledger owns its state machine: every allowed move works, every other one is refused, and nothing but
`outreach.store.ledger` writes a delivery's status."""

from __future__ import annotations

import ast
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.store.database import utcnow
from outreach.store.ledger import TRANSITIONS, ForbiddenMove, Status, insert_rows, move, new_row
from outreach.store.schema import deliveries, events

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / "outreach" / "store" / "ledger.py"
ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
FORBIDDEN = [(a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a]]


def _row_in(engine: Engine, state: Status, key: str) -> int:
    """A ledger row put in `state` by the test itself (the test may write the table; the code may not)."""
    now = utcnow()
    row = new_row(
        campaign_id="c", occurrence="o", step_id=key, customer_id="K1", channel="sms", purpose="service",
        address="+8613800000001", now=now, body="hello",
    )  # fmt: skip
    with engine.begin() as conn:
        [(delivery_id, _, _)] = insert_rows(conn, [row])
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status=str(state)))
    return delivery_id


def _events_of(engine: Engine, delivery_id: int) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(events.c.kind).where(events.c.delivery_id == delivery_id).order_by(events.c.id)
        return list(conn.execute(query).scalars())


def test_the_table_names_every_state_and_ends_in_final_ones() -> None:
    assert set(TRANSITIONS) == set(Status)
    finals = {s for s, targets in TRANSITIONS.items() if not targets}
    assert finals == {Status.DELIVERED, Status.UNDELIVERED, Status.SUPPRESSED}
    # nothing ever goes back to planned, and a delivered row is never failed by a late bounce
    assert all(Status.PLANNED not in targets for targets in TRANSITIONS.values())
    assert Status.FAILED not in TRANSITIONS[Status.DELIVERED]


def test_every_allowed_move_changes_the_row_stamps_it_and_writes_its_event(engine: Engine) -> None:
    later = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    for n, (origin, target) in enumerate(ALLOWED):
        delivery_id = _row_in(engine, origin, f"allowed{n}")
        with engine.begin() as conn:
            moved = move(conn, target, [delivery_id], expect=[origin], now=later, values={"detail": f"{origin}>"})
        assert [r["status"] for r in moved] == [origin], (origin, target)  # the rows as they were
        with engine.connect() as conn:
            status, updated_at, detail = conn.execute(
                sa.select(deliveries.c.status, deliveries.c.updated_at, deliveries.c.detail).where(
                    deliveries.c.id == delivery_id
                )
            ).one()
        assert (status, detail) == (target, f"{origin}>"), (origin, target)
        assert updated_at == later
        assert _events_of(engine, delivery_id) == [f"delivery.{target}"]


def test_every_forbidden_move_is_refused_before_anything_is_written(engine: Engine) -> None:
    for n, (origin, target) in enumerate(FORBIDDEN):
        delivery_id = _row_in(engine, origin, f"forbidden{n}")
        with engine.begin() as conn, pytest.raises(ForbiddenMove, match=f"from {origin} to {target}"):
            move(conn, target, [delivery_id], expect=[origin], now=utcnow())
        with engine.connect() as conn:
            status = conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one()
        assert status == origin
        assert _events_of(engine, delivery_id) == []


def test_a_row_no_longer_in_the_expected_state_is_left_alone(engine: Engine) -> None:
    # A duplicated broker message or a late retry: the row moved on meanwhile, so nothing happens.
    delivery_id = _row_in(engine, Status.DELIVERED, "moved-on")
    with engine.begin() as conn:
        moved = move(conn, Status.FAILED, [delivery_id], expect=[Status.SENT], now=utcnow())
    assert moved == []
    assert _events_of(engine, delivery_id) == []


def test_a_claim_token_guards_the_holders_rows(engine: Engine) -> None:
    delivery_id = _row_in(engine, Status.SENDING, "claimed")
    with engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(claim_token="mine"))
        assert move(conn, Status.SENT, [delivery_id], expect=[Status.SENDING], token="theirs", now=utcnow()) == []
        assert len(move(conn, Status.SENT, [delivery_id], expect=[Status.SENDING], token="mine", now=utcnow())) == 1


def test_per_row_values_and_event_data(engine: Engine) -> None:
    first, second = _row_in(engine, Status.SENDING, "r1"), _row_in(engine, Status.SENDING, "r2")
    now = utcnow() + timedelta(seconds=1)
    with engine.begin() as conn:
        move(
            conn, Status.SENT, [first, second], expect=[Status.SENDING], now=now,
            per_row={first: {"provider_message_id": "SM1"}, second: {"provider_message_id": "SM2"}},
            describe=lambda r: {"channel": r["channel"], "n": r["id"]},
        )  # fmt: skip
        sids = dict(conn.execute(sa.select(deliveries.c.id, deliveries.c.provider_message_id)).all())
        data = dict(conn.execute(sa.select(events.c.delivery_id, events.c.data)).all())
    assert (sids[first], sids[second]) == ("SM1", "SM2")
    assert data[first] == {"channel": "sms", "n": first}


# --- nothing else writes deliveries.status -----------------------------------------------------------------


def _writes_status(tree: ast.AST) -> list[int]:
    """Lines where `deliveries.update()` / `deliveries.insert()` (or `sa.update(deliveries)`) is given a
    `status`, or where a raw SQL string updates the deliveries table."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.lower().split())
            if "update deliveries" in text or "insert into deliveries" in text:
                found.append(node.lineno)
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"):
            continue
        if not _on_deliveries_write(node.func.value):
            continue
        keys = {k.arg for k in node.keywords}
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                keys |= {k.value for k in arg.keys if isinstance(k, ast.Constant)}
        if "status" in keys:
            found.append(node.lineno)
    return found


def _on_deliveries_write(node: ast.expr) -> bool:
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("update", "insert"):
                base = func.value
                if isinstance(base, ast.Name) and base.id == "deliveries":
                    return True
                if any(isinstance(a, ast.Name) and a.id == "deliveries" for a in node.args):
                    return True
            node = func.value if isinstance(func, ast.Attribute) else func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def test_only_the_ledger_writes_a_delivery_status() -> None:
    writers = []
    for path in sorted([*ROOT.glob("outreach/**/*.py"), *ROOT.glob("workers/**/*.py")]):
        if path == LEDGER:
            continue
        for line in _writes_status(ast.parse(path.read_text(encoding="utf-8"))):
            writers.append(f"{path.relative_to(ROOT)}:{line}")
    assert writers == []


def test_the_single_writer_check_finds_a_writer() -> None:
    samples = [
        "deliveries.update().where(x).values(status='sent')",
        "sa.update(deliveries).values({'status': 'failed'})",
        "conn.execute(deliveries.update().where(d.id == 1).values(updated_at=now, status=Status.DEAD))",
        "conn.exec_driver_sql('UPDATE deliveries SET status = 1')",
    ]
    for sample in samples:
        assert _writes_status(ast.parse(sample)), sample
    assert _writes_status(ast.parse("deliveries.update().values(opted_out_at=now)")) == []
