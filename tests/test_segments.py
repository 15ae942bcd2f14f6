"""Segments: the SQL agrees with a plain Python reading of the documented semantics, on SQLite and
PostgreSQL alike; refused expressions say why and where; nothing of an expression runs in Python.

The reference evaluator below is written from the module docstring of outreach.segments, not from its
code: a comparison is true only when the field has a value of the compared type and the comparison holds,
otherwise false; text compares by code point; dates compare as ISO text; days_ago(N) is today - N days.
"""

from __future__ import annotations

import ast
import operator
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from outreach.db import make_engine, open_store
from outreach.fields import AttributeType
from outreach.migrations import migrate
from outreach.schema import attribute_types, customers
from outreach.segment_syntax import SegmentError
from outreach.segments import check_segment, compile_segment
from tests.services import unavailable

TODAY = date(2026, 3, 15)
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

CATALOG: dict[str, AttributeType] = {
    "age": "number",
    "score": "number",
    "vip": "boolean",
    "joined": "date",
    "last_login": "date",
    "city": "string",
    "products": "list",
}
CORE = ("id", "name", "email", "country", "locale")
FIELD_TYPES: dict[str, AttributeType] = {**dict.fromkeys(CORE, "string"), **CATALOG}


@dataclass
class Customer:
    id: str
    core: dict[str, str | None] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


# -- the reference reading --------------------------------------------------------------------------------

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def value_of(customer: Customer, name: str) -> Any:
    """The customer's value for a field when it is of the field's type; None for no value."""
    if name == "id":
        return customer.id
    if name in CORE:
        return customer.core.get(name)
    value = customer.attributes.get(name)
    kind = FIELD_TYPES[name]
    if kind == "number":
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        fits = isinstance(value, bool)
    elif kind == "list":
        fits = isinstance(value, list)
    else:
        fits = isinstance(value, str)
    return value if fits else None


def iso_date_text(text: str) -> str:
    """A date literal as the store keeps dates: YYYY-MM-DD, or UTC YYYY-MM-DDTHH:MM:SSZ."""
    if len(text) == 10:
        return date.fromisoformat(text).isoformat()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return f"{moment.date().isoformat()}T{moment:%H:%M:%S}Z"


def literal_value(node: ast.expr, kind: AttributeType) -> Any:
    if isinstance(node, ast.Call):  # days_ago(N)
        days = node.args[0]
        assert isinstance(days, ast.Constant) and isinstance(days.value, int)
        return (TODAY - timedelta(days=days.value)).isoformat()
    if isinstance(node, ast.UnaryOp):
        assert isinstance(node.op, ast.USub)
        return -literal_value(node.operand, kind)
    assert isinstance(node, ast.Constant), ast.dump(node)
    if kind == "date":
        assert isinstance(node.value, str)
        return iso_date_text(node.value)
    return node.value


def pair_holds(left: ast.expr, op: ast.cmpop, right: ast.expr, customer: Customer) -> bool:
    if isinstance(op, ast.In | ast.NotIn):
        wanted = isinstance(op, ast.In)
        if isinstance(right, ast.Tuple | ast.List):
            assert isinstance(left, ast.Name)
            value = value_of(customer, left.id)
            if value is None:
                return False
            options = [literal_value(e, FIELD_TYPES[left.id]) for e in right.elts]
            return (value in options) == wanted
        assert isinstance(right, ast.Name)
        items = value_of(customer, right.id)
        if items is None:
            return False
        text = literal_value(left, "string")
        return any(isinstance(item, str) and item == text for item in items) == wanted
    if isinstance(op, ast.Is | ast.IsNot):
        assert isinstance(left, ast.Name)
        return (value_of(customer, left.id) is None) == isinstance(op, ast.Is)
    name = left if isinstance(left, ast.Name) else right
    assert isinstance(name, ast.Name)
    value = value_of(customer, name.id)
    if value is None:
        return False
    kind = FIELD_TYPES[name.id]
    a = value if left is name else literal_value(left, kind)
    b = value if right is name else literal_value(right, kind)
    return _COMPARE[type(op)](a, b)


def holds(node: ast.expr, customer: Customer) -> bool:
    if isinstance(node, ast.BoolOp):
        results = [holds(v, customer) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        assert isinstance(node.op, ast.Not)
        return not holds(node.operand, customer)
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Name):
        return value_of(customer, node.id) is True
    assert isinstance(node, ast.Compare), ast.dump(node)
    left = node.left
    for op, right in zip(node.ops, node.comparators, strict=True):
        if not pair_holds(left, op, right, customer):
            return False
        left = right
    return True


def expected_ids(text: str, people: list[Customer]) -> set[str]:
    tree = ast.parse(text.strip() or "True", mode="eval").body
    return {c.id for c in people if holds(tree, c)}


# -- the store ---------------------------------------------------------------------------------------------


def load(engine: Engine, people: list[Customer], catalog: dict[str, AttributeType] = CATALOG) -> None:
    with engine.begin() as conn:
        conn.execute(customers.delete())
        conn.execute(attribute_types.delete())
        if catalog:
            conn.execute(attribute_types.insert(), [{"name": k, "type": v} for k, v in catalog.items()])
        if people:
            rows = [
                {
                    "id": c.id,
                    "name": c.core.get("name"),
                    "email": c.core.get("email"),
                    "country": c.core.get("country"),
                    "locale": c.core.get("locale"),
                    "attributes": c.attributes,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for c in people
            ]
            conn.execute(customers.insert(), rows)


def select_ids(engine: Engine, text: str, catalog: dict[str, AttributeType] = CATALOG) -> set[str]:
    clause = compile_segment(text, catalog, engine.dialect.name, TODAY)
    with engine.connect() as conn:
        return set(conn.execute(sa.select(customers.c.id).where(clause)).scalars())


# -- generated customers ---------------------------------------------------------------------------------

STRINGS = [
    "",
    " ",
    "a",
    "A",
    "ab",
    "b",
    "Shanghai",
    "上海",
    "上海 ",
    "北京",
    "it's",
    'say "hi"',
    "100%",
    "%",
    "_",
    "a_b",
    "a%b",
    "back\\slash",
    "\\",
    "Zürich",
    "😀",
    "x' OR '1'='1",
    "c0",
    "c1",
    "2026-03-15",
]
CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")  # PostgreSQL text cannot hold NUL
texts = st.sampled_from(STRINGS) | st.text(CHARACTERS, max_size=6)
ints = st.sampled_from([0, 1, -1, 2, 17, 18, 65, 2**53, -(2**53)]) | st.integers(-(2**53), 2**53)
floats = st.sampled_from([0.5, -0.5, 0.1, 0.30000000000000004, 18.0, -0.0, 1e16, 1e-300, 1.7976931348623157e308]) | (
    st.floats(allow_nan=False, allow_infinity=False)
)
numbers = ints | floats
days = st.sampled_from([TODAY - timedelta(days=n) for n in (0, 1, 7, 29, 30, 31, 365)] + [date(2024, 2, 29)]) | (
    st.dates(min_value=date(1000, 1, 2), max_value=date(9999, 12, 30))
)
times = st.sampled_from([(0, 0, 0), (23, 59, 59), (12, 0, 0)]) | st.tuples(
    st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)
)


@st.composite
def date_texts(draw: st.DrawFn, with_time: bool) -> str:
    day = draw(days)
    if not with_time or draw(st.booleans()):
        return day.isoformat()
    h, m, s = draw(times)
    return f"{day.isoformat()}T{h:02d}:{m:02d}:{s:02d}Z"


PRODUCTS = st.sampled_from(["savings", "loan", "上海", "100%", "a_b", ""])
ODD_VALUES: list[Any] = [None, "12", "true", 12, 1.5, True, False, ["上海"], {"a": 1}, [["上海"]], [1, "loan"], "x"]
ATTRIBUTE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "age": ints,
    "score": numbers,
    "vip": st.booleans(),
    "joined": date_texts(with_time=False),
    "last_login": date_texts(with_time=True),
    "city": texts,
    "products": st.lists(PRODUCTS | texts, max_size=3),
}


@st.composite
def customer_lists(draw: st.DrawFn) -> list[Customer]:
    people = []
    for i in range(draw(st.integers(0, 7))):
        core = {
            "name": draw(st.none() | texts),
            "email": draw(st.none() | st.sampled_from(["zhang@example.com", "a@b.cn", ""]) | texts),
            "country": draw(st.none() | st.sampled_from(["CN", "US", "cn"]) | st.text(CHARACTERS, max_size=2)),
            "locale": draw(st.none() | st.sampled_from(["zh-CN", "en"]) | texts),
        }
        attributes: dict[str, Any] = {}
        for name, values in ATTRIBUTE_VALUES.items():
            how = draw(st.sampled_from(["missing", "value", "value", "value", "odd"]))
            if how == "value":
                attributes[name] = draw(values)
            elif how == "odd":  # a value of another JSON type, stored behind the catalog's back
                attributes[name] = draw(st.sampled_from(ODD_VALUES))
        people.append(Customer(f"c{i}", core, attributes))
    return people


# -- generated segments ----------------------------------------------------------------------------------

COMPARABLE = [n for n, k in FIELD_TYPES.items() if k != "list"]
ORDERED = [n for n, k in FIELD_TYPES.items() if k in ("number", "date", "string")]
ALL_OPS = ["==", "!=", "<", "<=", ">", ">="]


@st.composite
def days_ago(draw: st.DrawFn) -> str:
    return f"days_ago({draw(st.sampled_from([0, 1, 7, 30, 31, 365]) | st.integers(0, 3000))})"


@st.composite
def literal(draw: st.DrawFn, name: str) -> str:
    """Source text of a literal a field of this name may be compared with."""
    kind = FIELD_TYPES[name]
    if kind == "number":
        return repr(draw(numbers))
    if kind == "boolean":
        return repr(draw(st.booleans()))
    if kind == "string":
        if draw(st.integers(0, 9)) == 0:
            return draw(days_ago())
        return repr(draw(texts))
    form = draw(st.sampled_from(["date", "datetime", "offset", "days_ago"]))
    if form == "days_ago":
        return draw(days_ago())
    if form == "offset":
        day, (h, m, s), hours = draw(days), draw(times), draw(st.integers(-12, 14))
        sign = "+" if hours >= 0 else "-"
        return repr(f"{day.isoformat()}T{h:02d}:{m:02d}:{s:02d}{sign}{abs(hours):02d}:00")
    return repr(draw(date_texts(with_time=form == "datetime")))


@st.composite
def atoms(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(["compare", "compare", "compare", "chain", "in", "contains", "is", "bare", "const"]))
    if form == "compare":
        name = draw(st.sampled_from(COMPARABLE))
        ops = ALL_OPS if FIELD_TYPES[name] != "boolean" else ["==", "!="]
        op, value = draw(st.sampled_from(ops)), draw(literal(name))
        return f"{name} {op} {value}" if draw(st.booleans()) else f"{value} {op} {name}"
    if form == "chain":
        name = draw(st.sampled_from(ORDERED))
        op1, op2 = draw(st.sampled_from(ALL_OPS)), draw(st.sampled_from(ALL_OPS))
        return f"{draw(literal(name))} {op1} {name} {op2} {draw(literal(name))}"
    if form == "in":
        name = draw(st.sampled_from(COMPARABLE))
        values = [draw(literal(name)) for _ in range(draw(st.integers(0, 3)))]
        values = [v for v in values if not v.startswith("days_ago")]  # a tuple holds plain literals only
        bracketed = (
            f"[{', '.join(values)}]" if draw(st.booleans()) else f"({', '.join(values)}{',' * (len(values) == 1)})"
        )
        return f"{name} {draw(st.sampled_from(['in', 'not in']))} {bracketed}"
    if form == "contains":
        item = draw(days_ago()) if draw(st.integers(0, 9)) == 0 else repr(draw(PRODUCTS | texts))
        return f"{item} {draw(st.sampled_from(['in', 'not in']))} products"
    if form == "is":
        return f"{draw(st.sampled_from(sorted(FIELD_TYPES)))} {draw(st.sampled_from(['is', 'is not']))} None"
    if form == "bare":
        return "vip"
    return draw(st.sampled_from(["True", "False"]))


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(atoms())
    form = draw(st.sampled_from(["and", "or", "not"]))
    wrap = draw(st.booleans())

    def part() -> str:
        text = draw(conditions(depth + 1))
        return f"({text})" if wrap else text

    if form == "not":
        return f"not {part()}"
    return f" {form} ".join(part() for _ in range(draw(st.integers(2, 3))))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(people=customer_lists(), segments=st.lists(conditions(), min_size=1, max_size=6))
def test_sql_agrees_with_the_python_reading(engine: Engine, people: list[Customer], segments: list[str]) -> None:
    load(engine, people)
    for text in segments:
        check_segment(text, CATALOG)
        found = select_ids(engine, text)
        wanted = expected_ids(text, people)
        assert found == wanted, f"{engine.dialect.name}: {text!r}\n" + "\n".join(
            f"  {c.id}: {c.core} {c.attributes}" for c in people if c.id in found ^ wanted
        )


# -- refusals ----------------------------------------------------------------------------------------------

REFUSED = [
    # (segment, 1-based column, part of the message)
    ("__import__('os')", 1, "only function a segment may call is days_ago"),
    ("__import__('os').system('rm -rf /') == 0", 1, "only function a segment may call is days_ago"),
    ("age > 5 and open('x')", 13, "only function a segment may call is days_ago"),
    ("eval('1') == 1", 1, "only function a segment may call is days_ago"),
    ("days_ago(3)", 1, "only function a segment may call is days_ago(N), in a comparison"),
    ("last_login < days_ago", 14, "days_ago is a function"),
    ("last_login < days_ago(-1)", 14, "days_ago takes one whole number"),
    ("last_login < days_ago(1.5)", 14, "days_ago takes one whole number"),
    ("last_login < days_ago(n=3)", 14, "days_ago takes one whole number"),
    ("last_login < days_ago(100000000)", 14, "days_ago"),
    ("a.__class__", 1, "attribute access (a.b) is not allowed"),
    ("age.__class__ == 1", 1, "attribute access (a.b) is not allowed"),
    ("vip and ().__class__.__bases__[0].__subclasses__()", 9, "only function"),
    ("products[0] == 'loan'", 1, "indexing (a[b]) is not allowed"),
    ("lambda: True", 1, "lambda is not allowed"),
    ("(lambda: 1)() == 1", 1, "only function"),
    ("age + 1 > 18", 1, "arithmetic is not allowed"),
    ("age > 17 + 1", 7, "arithmetic is not allowed"),
    ("age > 2 ** 64", 7, "arithmetic is not allowed"),
    ("age if vip else False", 1, "a conditional expression is not allowed"),
    ("(vip := True)", 2, "assignment (:=) is not allowed"),
    ("age > score", 7, "compare a field with a value, not with another field"),
    ("city == name", 9, "compare a field with a value, not with another field"),
    ("1 < 2", 1, "a comparison needs a field on one side"),
    ("age == 'x'", 8, "'age' holds number values; it cannot be compared with 'x'"),
    ("city == 5", 9, "'city' holds string values"),
    ("vip == 1", 8, "'vip' holds boolean values"),
    ("age == True", 8, "'age' holds number values"),
    ("joined > 'yesterday'", 10, "'joined' holds dates"),
    ("joined > '2026-02-30'", 10, "'joined' holds dates"),
    ("joined > '0001-01-01T00:00:00+01:00'", 10, "'joined' holds dates"),
    ("vip > False", 7, "'vip' is true or false: compare it with == or !="),
    ("age is 5", 8, "`is` only compares with None"),
    ("age is not 'x'", 12, "`is` only compares with None"),
    ("None is age", 1, "write `field is None`, with the field first"),
    ("age == None", 8, "compare with None using `is None`"),
    ("age in (1, 'x')", 12, "'age' holds number values"),
    ("age in (1, score)", 12, "a list in a segment holds only literal values"),
    ("city in 'Shanghai'", 1, "use `field in ('a', 'b')` or `'a' in list_field`"),
    ("age in products", 1, "use `field in ('a', 'b')` or `'a' in list_field`"),
    ("'x' in city", 8, "'city' is a string field, not a list"),
    ("5 in products", 1, "list attributes hold text"),
    ("products == 'loan'", 13, "'products' is a list"),
    ("products", 1, "'products' is a list"),
    ("age", 1, "'age' is a number field: compare it"),
    ("vip and city", 9, "'city' is a string field"),
    ("-'x' < city", 1, "only numbers can be negative"),
    ("5", 1, "a segment must be a condition, not a lone value"),
    ("'vip'", 1, "a segment must be a condition, not a lone value"),
    ("f'{age}' == '1'", 1, "JoinedStr is not allowed"),
    ("b'x' == city", 1, "is not allowed"),
    ("~vip", 1, "is not allowed"),
    ("status == 'active'", 1, "no customer has a field or attribute named 'status'"),
    ("vip and __builtins__", 9, "no customer has a field or attribute named '__builtins__'"),
    ("age >", 6, "segment does not parse"),
    ("age => 18", 5, "segment does not parse"),
    ("city = 'Shanghai'", 6, "segment does not parse"),
    ("age == 'x", 8, "segment does not parse"),
    ("(age > 5", 1, "segment does not parse"),
    ("age > 5)", 8, "segment does not parse"),
    ("age\x00 > 5", 4, "segment does not parse: it contains a NUL character"),
    # Columns count characters, not UTF-8 bytes, and include leading blanks.
    ("city == '上海' and a.b", 18, "attribute access (a.b) is not allowed"),
    ("city == '上海' and age == 'x'", 25, "'age' holds number values"),
    ("'上海上海' == == 1", 11, "segment does not parse"),
    ("   age == 'x'", 11, "'age' holds number values"),
    ("  age >", 8, "segment does not parse"),
    ("  age >> 1", 3, "arithmetic is not allowed"),
    ("  age => 5", 7, "segment does not parse"),
    ("city == '上海' or city == 'x", 25, "segment does not parse"),
    # In an expression of several lines, the column is within the offending line.
    ("(age > 5 and\n a.b)", 2, "attribute access (a.b) is not allowed"),
    ("\n  a.b", 3, "attribute access (a.b) is not allowed"),
]


@pytest.mark.parametrize(("text", "col", "message"), REFUSED)
def test_refused_segments_say_why_and_where(text: str, col: int, message: str) -> None:
    for attempt in (
        lambda: check_segment(text, CATALOG),
        lambda: compile_segment(text, CATALOG, "sqlite", TODAY),
        lambda: compile_segment(text, CATALOG, "postgresql", TODAY),
    ):
        with pytest.raises(SegmentError) as caught:
            attempt()
        assert message in caught.value.message
        assert caught.value.col == col, (caught.value.message, caught.value.col)


def test_deep_nesting_is_refused_not_crashing() -> None:
    for text in [
        "not " * 5000 + "vip",
        "not " * 150 + "vip",
        "not (" * 400 + "vip" + ")" * 400,
        "(vip and " * 120 + "vip" + ")" * 120,
    ]:
        with pytest.raises(SegmentError, match=r"nested too deeply|too many nested parentheses"):
            compile_segment(text, CATALOG, "sqlite", TODAY)
    for dialect in ("sqlite", "postgresql"):  # deep enough for anyone, and it compiles
        str(compile_segment("(age > 1 or " * 40 + "not " * 40 + "vip" + ")" * 40, CATALOG, dialect, TODAY))


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


def test_names_are_only_checked_once_attributes_are_known() -> None:
    check_segment("status == 'active' and 'x' in anything", None)  # form only: no catalog yet
    compile_segment("status == 'active'", {}, "sqlite", TODAY)  # an empty store: never matched
    with pytest.raises(SegmentError, match="'status'"):
        check_segment("status == 'active'", CATALOG)
    with pytest.raises(SegmentError, match="only function"):
        check_segment("open('x') == 1", None)


def test_nothing_of_a_segment_is_evaluated_in_python(tmp_path: Path) -> None:
    """No code object of the expression runs: audit events show no exec, import, open or os call, and
    expressions that would act if evaluated leave no trace."""
    marker = tmp_path / "evaluated"
    hostile = [
        f"__import__('os').system('touch {marker}') == 0",
        f"open({str(marker)!r}, 'w') is None",
        f"vip or __import__('pathlib').Path({str(marker)!r}).touch()",
        "age > 5 and exec('import os')",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "city == (lambda: __import__('os'))()",
    ]
    harmless = [
        "vip and __name__ is None",  # names are fields: __name__ is looked up in the catalog, not Python's scope
        "18 <= age < 65 and city in ('上海', 'Beijing') and 'loan' in products and last_login < days_ago(30)",
    ]
    for text in harmless:  # warm up: anything SQLAlchemy imports lazily is imported now
        for dialect in ("sqlite", "postgresql"):
            str(compile_segment(text.replace("__name__", "email"), CATALOG, dialect, TODAY))
    events: list[str] = []
    recording = [True]

    def hook(event: str, _args: tuple[Any, ...]) -> None:
        if recording[0] and (event in ("exec", "import", "open") or event.startswith(("os.", "subprocess."))):
            events.append(event)

    sys.addaudithook(hook)
    try:
        for text in hostile:
            for catalog in (CATALOG, {}):
                with pytest.raises(SegmentError):
                    compile_segment(text, catalog, "sqlite", TODAY)
            with pytest.raises(SegmentError):
                check_segment(text, None)
        with pytest.raises(SegmentError, match="'__name__'"):
            check_segment(harmless[0], CATALOG)
        for dialect in ("sqlite", "postgresql"):
            str(compile_segment(harmless[0], {}, dialect, TODAY))
            str(compile_segment(harmless[1], CATALOG, dialect, TODAY))
        assert events == []
        exec("pass")  # the control: evaluating something in Python is seen
        assert events == ["exec"]
    finally:
        recording[0] = False  # an audit hook cannot be removed; it stops recording
    assert not marker.exists()


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
