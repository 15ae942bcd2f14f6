"""Generated customers and segments: the SQL of every segment selects exactly the customers that the reference
reading (tests.segment_reference) selects, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from outreach.segments.compiler import check_segment
from tests.segment_reference import CATALOG, FIELD_TYPES, TODAY, Customer, expected_ids, load, select_ids

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
