"""An import of many chunks is still one file: all or nothing, ids unique across chunks, one type per
attribute even when a late row changes what the first ones suggested."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers import importer
from outreach.customers.importer import import_customers
from outreach.store.schema import attribute_types, consents, customers, events

CHUNK = 10


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "CHUNK", CHUNK)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["id,name,email,consent_email,code", *rows]) + "\n", encoding="utf-8")
    return path


def rows(count: int, code: Callable[[int], str] = str) -> list[str]:
    return [f"C{i:03d},Customer {i},c{i}@example.com,yes,{code(i)}" for i in range(count)]


def stored(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_bad_row_in_the_last_chunk_leaves_nothing_of_the_first_ones(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    lines = rows(45)
    lines[43] = "C043,Customer 43,not-an-email,yes,43"
    with pytest.raises(InputError) as caught:
        import_customers(engine, write_csv(tmp_path / "c.csv", lines), make_settings(store_url))
    assert [p.line for p in caught.value.problems] == [45]
    for table in (customers, consents, events, attribute_types):
        assert stored(engine, table) == 0, table.name


def test_an_id_given_again_in_a_later_chunk_is_named_with_its_first_line(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    lines = rows(35)
    lines[31] = "C002,Someone Else,else@example.com,yes,2"  # line 33 repeats line 4's id
    lines[5] = "C004,Twice In One Chunk,twice@example.com,yes,4"  # line 7 repeats line 6's id
    with pytest.raises(InputError) as caught:
        import_customers(engine, write_csv(tmp_path / "c.csv", lines), make_settings(store_url))
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (7, "id 'C004' already appears on line 6"),
        (33, "id 'C002' already appears on line 4"),
    ]
    assert stored(engine, customers) == 0


def test_a_late_row_that_changes_a_guessed_type_gives_every_row_the_files_type(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    # The first three chunks look like numbers; line 36 makes the column text.
    lines = rows(40, code=lambda i: "A12" if i == 34 else str(100 + i))
    summary = import_customers(engine, write_csv(tmp_path / "c.csv", lines), make_settings(store_url))
    assert summary.created == 40
    assert summary.new_attributes == {"code": "string"}
    with engine.connect() as conn:
        codes = dict(conn.execute(sa.select(customers.c.id, customers.c.attributes)).all())
        assert {c["code"] for c in codes.values()} == {"A12", *(str(100 + i) for i in range(40) if i != 34)}
        assert conn.execute(sa.select(attribute_types.c.type)).scalars().all() == ["string"]
    assert stored(engine, events) == 80  # profile.created and consent.granted, once each: nothing doubled


def test_types_guessed_from_the_first_chunk_hold_for_the_rest(
    engine: Engine, tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    summary = import_customers(engine, write_csv(tmp_path / "c.csv", rows(30)), make_settings(store_url))
    assert summary.new_attributes == {"code": "number"}
    with engine.connect() as conn:
        values = [a["code"] for a in conn.execute(sa.select(customers.c.attributes)).scalars()]
    assert sorted(values) == list(range(30))
