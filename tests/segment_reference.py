"""The segment tests' reference: a plain Python reading of segments, and a store to run the SQL reading on.

The reference evaluator below is written from the module docstring of outreach.segments.compiler, not from its
code: a comparison is true only when the field has a value of the compared type and the comparison holds,
otherwise false; text compares by code point; dates compare as ISO text; days_ago(N) is today - N days.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.segments.compiler import compile_segment
from outreach.store.fields import AttributeType
from outreach.store.schema import attribute_types, customers

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
