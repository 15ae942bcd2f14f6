"""Awkward customers and long segments: a fixed set of edge cases selects the same ids on SQLite and PostgreSQL
as the reference reading, long lists and `or` chains work on both, and an empty store matches no unknown name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.store.database import make_engine, open_store
from outreach.store.migrations import migrate
from tests.segment_reference import Customer, expected_ids, load, select_ids
from tests.services import unavailable


def test_long_lists_work_on_both_databases(engine: Engine) -> None:
    """SQLite refuses expressions deeper than 1000: a long `in` list or `or` chain must not become one."""
    people = [Customer(f"c{i}", {}, {"age": i, "city": f"city{i}"}) for i in range(3)]
    load(engine, people)
    many = range(2, 1200)
    assert select_ids(engine, f"city in ({', '.join(repr(f'city{i}') for i in many)})") == {"c2"}
    assert select_ids(engine, f"age not in ({', '.join(str(i) for i in many)})") == {"c0", "c1"}
    assert select_ids(engine, " or ".join(f"age == {i}" for i in many)) == {"c2"}
    assert select_ids(engine, " and ".join(f"age != {i}" for i in many)) == {"c0", "c1"}
    deepest = "(age == 0 or " * 50 + "not " * 50 + "age != 1" + ")" * 50  # as deep as a segment may be
    assert select_ids(engine, deepest) == expected_ids(deepest, people) == {"c0", "c2"}


# -- the same answers on SQLite and PostgreSQL for a fixed set of awkward customers --------------------------


EDGE_CUSTOMERS = [
    Customer(
        "c1",
        {"name": "张三", "email": "zhang@example.com", "country": "CN", "locale": "zh-CN"},
        {
            "age": 34,
            "score": 1.5,
            "vip": True,
            "joined": "2020-01-05",
            "last_login": "2026-03-12T08:30:00Z",
            "city": "上海",
            "products": ["savings", "loan"],
        },
    ),
    # Values of the wrong JSON type, stored behind the catalog's back: none of them is a value.
    Customer(
        "c2",
        {"name": "Bob", "email": None, "country": "US", "locale": "en"},
        {
            "age": "34",
            "score": None,
            "vip": "true",
            "joined": 20200105,
            "last_login": {"at": "2026-03-12"},
            "city": 42,
            "products": "savings",
        },
    ),
    Customer("c3", {}, {}),
    Customer(
        "c4",
        {"name": "", "email": "", "country": "", "locale": ""},
        {
            "age": True,
            "score": [1],
            "vip": 1,
            "joined": ["2020-01-05"],
            "last_login": False,
            "city": ["上海"],
            "products": [["savings"], 1, {"loan": True}],
        },
    ),
    Customer(
        "c5",
        {"name": 'x" OR 1=1 --', "email": "o'brien@example.com", "country": "cn", "locale": "en-GB"},
        {
            "age": -0.5,
            "score": -1e16,
            "vip": False,
            "joined": "2024-02-29",
            "last_login": "2026-02-13",
            "city": "O'Brien",
            "products": ["100%", "a_b", "back\\slash", ""],
        },
    ),
    Customer(
        "c6",
        {"name": "x' OR '1'='1", "email": "six@example.com", "country": "US", "locale": "zh-CN"},
        {
            "age": 65,
            "score": 0.30000000000000004,
            "vip": True,
            "joined": "2026-03-15",
            "last_login": "2026-03-15T00:00:00Z",
            "city": "上海 ",
            "products": [1, "loan"],
        },
    ),
    Customer(
        "c7",
        {"name": "Zoë", "email": None, "country": None, "locale": None},
        {
            "age": 18.0,
            "score": 9007199254740993,
            "vip": None,
            "joined": "1999-12-31",
            "last_login": "2026-02-12T23:59:59Z",
            "city": "Zürich",
            "products": [],
        },
    ),
    Customer(
        "c8",
        {"name": "a%b_c\\d", "email": "eight@example.com", "country": "SG", "locale": "en"},
        {"age": 17, "score": 0.1, "city": "a", "products": ["%", "_", "savings "], "last_login": "2026-03-15"},
    ),
]

# Segments and the customers they must select (the reference reading is checked against these too).


EDGE_SEGMENTS: list[tuple[str, set[str] | None]] = [
    ("", {"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"}),
    ("True", {"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"}),
    ("False", set()),
    ("age >= 18", {"c1", "c6", "c7"}),
    ("not (age >= 18)", {"c2", "c3", "c4", "c5", "c8"}),
    ("age != 34", {"c5", "c6", "c7", "c8"}),
    ("18 <= age < 65", {"c1", "c7"}),
    ("age in (34, 65)", {"c1", "c6"}),
    ("age in (-0.5, 18)", {"c5", "c7"}),
    ("age not in (34,)", {"c5", "c6", "c7", "c8"}),
    ("age in ()", set()),
    ("age not in ()", {"c1", "c5", "c6", "c7", "c8"}),
    ("age is None", {"c2", "c3", "c4"}),
    ("age is not None", {"c1", "c5", "c6", "c7", "c8"}),
    ("age == -0.5", {"c5"}),
    ("age < 1e999", {"c1", "c5", "c6", "c7", "c8"}),
    ("age > -1e999", {"c1", "c5", "c6", "c7", "c8"}),
    ("age < 100000000000000000000", {"c1", "c5", "c6", "c7", "c8"}),
    ("age > -100000000000000000000", {"c1", "c5", "c6", "c7", "c8"}),
    ("age == 18", {"c7"}),
    ("score < 0", {"c5"}),
    ("score > 0.3", {"c1", "c6", "c7"}),
    ("score == 9007199254740993", {"c7"}),
    ("score == 9007199254740992", set()),
    ("score is None", {"c2", "c3", "c4"}),
    ("vip", {"c1", "c6"}),
    ("not vip", {"c2", "c3", "c4", "c5", "c7", "c8"}),
    ("vip == False", {"c5"}),
    ("vip != True", {"c5"}),
    ("vip is None", {"c2", "c3", "c4", "c7", "c8"}),
    ("joined < '2021-01-01'", {"c1", "c7"}),
    ("joined >= days_ago(30)", {"c6"}),
    ("joined is None", {"c2", "c3", "c4", "c8"}),
    ("last_login < days_ago(30)", {"c7"}),
    ("last_login >= days_ago(30)", {"c1", "c5", "c6", "c8"}),
    ("last_login >= days_ago(0)", {"c6", "c8"}),
    ("last_login == '2026-03-15T00:00:00Z'", {"c6"}),
    ("last_login == '2026-03-15T08:00:00+08:00'", {"c6"}),
    ("last_login > '2026-03-12 08:30'", {"c6", "c8"}),
    ("'2026-01-01' <= last_login < '2026-03-13'", {"c1", "c5", "c7"}),
    ("city == '上海'", {"c1"}),
    ("city != '上海'", {"c5", "c6", "c7", "c8"}),
    ("city > 'Z'", {"c1", "c6", "c7", "c8"}),
    ("city < 'a'", {"c5", "c7"}),
    ("city >= 'a'", {"c1", "c6", "c8"}),
    ("city in ('上海', 'Beijing')", {"c1"}),
    ("city not in ('上海',)", {"c5", "c6", "c7", "c8"}),
    ('city == "O\'Brien"', {"c5"}),
    ("city is None", {"c2", "c3", "c4"}),
    ("name == 'x\" OR 1=1 --'", {"c5"}),
    ("name == \"x' OR '1'='1\"", {"c6"}),
    ("name == 'a%b_c\\\\d'", {"c8"}),
    ("name < 'a'", {"c2", "c4", "c7"}),
    ("name > 'Z'", {"c1", "c5", "c6", "c7", "c8"}),
    ("name is None", {"c3"}),
    ("'savings' in products", {"c1"}),
    ("'savings' not in products", {"c4", "c5", "c6", "c7", "c8"}),
    ("'loan' in products", {"c1", "c6"}),
    ("'1' in products", set()),
    ("'%' in products", {"c8"}),
    ("'100%' in products", {"c5"}),
    ("'a_b' in products", {"c5"}),
    ("'a%b' in products", set()),
    ("'back\\\\slash' in products", {"c5"}),
    ("'' in products", {"c5"}),
    ("'savings' in products or 'savings ' in products", {"c1", "c8"}),
    ("products is None", {"c2", "c3"}),
    ("products is not None", {"c1", "c4", "c5", "c6", "c7", "c8"}),
    ("email is None", {"c2", "c3", "c7"}),
    ("email is not None", {"c1", "c4", "c5", "c6", "c8"}),
    ("email == ''", {"c4"}),
    ("country in ('CN', 'US')", {"c1", "c2", "c6"}),
    ("country not in ('CN', 'US')", {"c4", "c5", "c8"}),
    ("locale != 'zh-CN'", {"c2", "c4", "c5", "c8"}),
    ("id in ('c1', 'c3')", {"c1", "c3"}),
    ("not (vip or age > 40) and city is not None", {"c5", "c7", "c8"}),
    ("age >= 18 and 'savings' in products and city in ('上海', 'Beijing')", {"c1"}),
    ("not 'savings' in products", {"c2", "c3", "c4", "c5", "c6", "c7", "c8"}),
    ("not not vip", {"c1", "c6"}),
]


@pytest.fixture
def both_engines(tmp_path: Path, postgres_url: str | None) -> Iterator[dict[str, Engine]]:
    if postgres_url is None:
        unavailable("PostgreSQL", "no server at the test URL")
    assert postgres_url is not None
    engines = {"sqlite": open_store(f"sqlite:///{tmp_path / 'outreach.db'}"), "postgresql": make_engine(postgres_url)}
    with engines["postgresql"].begin() as conn:  # whatever earlier tests left behind goes
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    migrate(engines["postgresql"])
    for engine in engines.values():
        load(engine, EDGE_CUSTOMERS)
    yield engines
    for engine in engines.values():
        load(engine, [], {})
        engine.dispose()


def test_edge_cases_give_the_same_ids_on_sqlite_and_postgresql(both_engines: dict[str, Engine]) -> None:
    mismatches = []
    for text, wanted in EDGE_SEGMENTS:
        reference = expected_ids(text, EDGE_CUSTOMERS)
        assert wanted is None or reference == wanted, f"reference reading of {text!r}: {sorted(reference)}"
        found = {name: select_ids(engine, text) for name, engine in both_engines.items()}
        if any(ids != reference for ids in found.values()):
            mismatches.append(
                f"{text!r}: wanted {sorted(reference)}, "
                + ", ".join(f"{name} {sorted(ids)}" for name, ids in found.items())
            )
    assert not mismatches, "\n".join(mismatches)


def test_an_empty_store_never_matches_unknown_names(engine: Engine) -> None:
    people = [Customer("c1", {"name": "A"}, {"age": 30, "vip": True})]
    load(engine, people, {})
    assert select_ids(engine, "age >= 18", {}) == set()
    assert select_ids(engine, "vip", {}) == set()
    assert select_ids(engine, "not vip", {}) == {"c1"}
    assert select_ids(engine, "age is None", {}) == {"c1"}
    assert select_ids(engine, "age not in (1, 2)", {}) == set()
    assert select_ids(engine, "'x' not in products", {}) == set()
    assert select_ids(engine, "name == 'A' and age is None", {}) == {"c1"}
