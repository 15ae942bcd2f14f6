"""Segment expressions: a safe subset of Python expressions, checked, then compiled to SQL.

    status == 'active' and age >= 18 and 'savings' in products and city in ('Shanghai', 'Beijing')

Nothing of an expression is ever evaluated in Python: it is parsed with `ast`, every node is checked
against a short list of allowed forms, and the result is a SQLAlchemy clause that runs the same on SQLite
and PostgreSQL.

Semantics, the same on both databases: a comparison is true only when the field has a value of the
compared type and the comparison holds; otherwise it is false (never NULL), so `not` and `!=` behave as a
marketer reads them: `not (age >= 18)` includes customers without an age, `city != 'Beijing'` does not
include customers without a city. Text compares by code point. Dates are ISO text (`YYYY-MM-DD`, or UTC
`YYYY-MM-DDTHH:MM:SSZ`), so they compare in time order; `days_ago(N)` is the UTC date N days before today.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, Grouping

from outreach.fields import CORE_FIELDS, AttributeType, parse_date
from outreach.json_lists import list_contains
from outreach.schema import customers
from outreach.segment_syntax import SegmentError, column_of, describe, parse_segment

EVERYONE = "everyone"
# Deeper nesting of and/or/not than this is refused: nobody writes it, and it would exhaust Python's stack.
# SQLite parses `a OR b OR c ...` into a tree as deep as the list is long, and refuses depth over 1000:
# longer and/or lists are compiled as a balanced tree of parenthesised groups of at most this many.
_GROUP = 64
_INT64 = range(-(2**63), 2**63)
_CORE_TYPES: dict[str, AttributeType] = dict.fromkeys(CORE_FIELDS, "string")
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_OPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt,
    ast.LtE: ast.GtE,
    ast.Gt: ast.Lt,
    ast.GtE: ast.LtE,
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
}


@dataclass(frozen=True)
class _Value:
    """A literal on the other side of a comparison, with its segment type."""

    value: Any
    kind: AttributeType | None  # None for the None literal


class SegmentCompiler:
    """Turns a checked expression into a SQL clause for one dialect, given the attribute types."""

    def __init__(self, catalog: dict[str, AttributeType], dialect: str, today: date, *, strict: bool = True) -> None:
        self.catalog = catalog
        self.dialect = dialect
        self.today = today
        # Without strictness (an empty store), unknown names are simply never matched.
        self.strict = strict

    def compile(self, tree: ast.expr) -> ColumnElement[bool]:
        return self._condition(tree)

    def field_type(self, name: str, node: ast.AST) -> AttributeType | None:
        if name in _CORE_TYPES:
            return _CORE_TYPES[name]
        if name in self.catalog:
            return self.catalog[name]
        if name == "days_ago":
            raise SegmentError("days_ago is a function: call it as days_ago(N)", column_of(node))
        if self.strict:
            raise SegmentError(f"no customer has a field or attribute named {name!r}", column_of(node))
        return None

    def _condition(self, node: ast.AST) -> ColumnElement[bool]:
        if isinstance(node, ast.BoolOp):
            return _join([self._condition(v) for v in node.values], "AND" if isinstance(node.op, ast.And) else "OR")
        if isinstance(node, ast.UnaryOp):
            return sa.not_(self._condition(node.operand))
        if isinstance(node, ast.Constant):
            return sa.true() if node.value else sa.false()
        if isinstance(node, ast.Name):
            kind = self.field_type(node.id, node)
            if kind is None:
                return sa.false()
            if kind == "list":
                raise SegmentError(f"{node.id!r} is a list: test membership as 'value' in {node.id}", column_of(node))
            if kind != "boolean":
                raise SegmentError(
                    f"{node.id!r} is a {kind} field: compare it (like {node.id} == ...) to use it as a condition",
                    column_of(node),
                )
            return self._compare(node.id, kind, ast.Eq(), _Value(True, "boolean"), node)
        assert isinstance(node, ast.Compare)
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self._pair(left, op, right))
            left = right
        return _join(parts, "AND")

    def _pair(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ColumnElement[bool]:
        if isinstance(op, ast.In | ast.NotIn):
            return self._membership(left, op, right)
        if isinstance(left, ast.Name) and not isinstance(right, ast.Name):
            name, value_node = left, right
        elif isinstance(right, ast.Name) and not isinstance(left, ast.Name):
            if isinstance(op, ast.Is | ast.IsNot):
                raise SegmentError("write `field is None`, with the field first", column_of(left))
            name, value_node, op = right, left, _FLIPPED[type(op)]()
        elif isinstance(left, ast.Name):
            assert isinstance(right, ast.Name)
            self.field_type(left.id, left)  # an unknown name, or days_ago without (N), is the first thing to fix
            self.field_type(right.id, right)
            raise SegmentError("compare a field with a value, not with another field", column_of(right))
        else:
            raise SegmentError("a comparison needs a field on one side", column_of(left))
        kind = self.field_type(name.id, name)
        value = self._literal(value_node)
        if isinstance(op, ast.Is | ast.IsNot):
            if value.kind is not None:
                raise SegmentError("`is` only compares with None; use == for values", column_of(value_node))
            present = self._present(name.id, kind)
            return sa.not_(present) if isinstance(op, ast.Is) else present
        if value.kind is None:
            raise SegmentError("compare with None using `is None` or `is not None`", column_of(value_node))
        if kind is None:
            return sa.false()
        value = self._fit(name.id, kind, value, value_node, op)
        return self._compare(name.id, kind, op, value, name)

    def _membership(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ColumnElement[bool]:
        negate = isinstance(op, ast.NotIn)
        if isinstance(left, ast.Name) and isinstance(right, ast.Tuple | ast.List):
            kind = self.field_type(left.id, left)
            if kind is None:
                return sa.false()
            values = [self._fit(left.id, kind, self._literal(e), e, ast.Eq()) for e in right.elts]
            if kind == "list":
                raise SegmentError(f"{left.id!r} is a list: test membership as 'value' in {left.id}", column_of(left))
            present = self._present_typed(left.id, kind)
            if not values:
                # Nothing is in an empty list; `not in ()` holds for every value, but not for no value.
                return present if negate else sa.false()
            # One SQL IN, not a chain of ORs: SQLite refuses an OR chain of 1000 values as too deep.
            clause = sa.func.coalesce(
                self._typed(left.id, kind).in_([self._bind(v) for v in values]), sa.false(), type_=sa.Boolean
            )
            # `not in` is a comparison too: false when the field has no value.
            return sa.and_(present, sa.not_(clause)) if negate else clause
        if isinstance(right, ast.Name) and not isinstance(left, ast.Name | ast.Tuple | ast.List):
            kind = self.field_type(right.id, right)
            if kind is None:
                return sa.false()
            if kind != "list":
                raise SegmentError(
                    f"{right.id!r} is a {kind} field, not a list: write {right.id} in ('a', 'b')", column_of(right)
                )
            value = self._literal(left)
            if value.kind not in ("string", "date"):
                raise SegmentError("list attributes hold text: test for a text value", column_of(left))
            contains = list_contains(customers.c.attributes, str(value.value), self.dialect, key=right.id)
            present = self._present_typed(right.id, "list")
            return sa.and_(present, sa.not_(contains)) if negate else contains
        raise SegmentError("use `field in ('a', 'b')` or `'a' in list_field`", column_of(left))

    def _literal(self, node: ast.expr) -> _Value:
        if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
            inner = node.operand.value
            if isinstance(inner, bool) or not isinstance(inner, int | float):
                raise SegmentError("only numbers can be negative", column_of(node))
            return _Value(-inner, "number")
        if isinstance(node, ast.Call):
            days = node.args[0]
            assert isinstance(days, ast.Constant) and isinstance(days.value, int)
            try:
                return _Value((self.today - timedelta(days=days.value)).isoformat(), "date")
            except OverflowError:
                raise SegmentError(f"days_ago({days.value}) is before the year 1", column_of(node)) from None
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None:
                return _Value(None, None)
            if isinstance(v, bool):
                return _Value(v, "boolean")
            if isinstance(v, int | float):
                return _Value(v, "number")
            return _Value(v, "string")
        raise SegmentError(f"{describe(node)} is not a value", column_of(node))

    def _fit(self, name: str, kind: AttributeType, value: _Value, node: ast.expr, op: ast.cmpop) -> _Value:
        """Check a literal against the field's type; date fields take ISO text or days_ago()."""
        if kind == "date" and value.kind == "string":
            try:
                normalised = parse_date(str(value.value))
            except OverflowError:  # a time zone that moves the moment out of years 1-9999
                normalised = None
            if normalised is None:
                raise SegmentError(
                    f"{name!r} holds dates: compare it with 'YYYY-MM-DD' or days_ago(N)", column_of(node)
                )
            return _Value(normalised, "date")
        if kind == "string" and value.kind == "date":
            return _Value(value.value, "string")
        if kind == "list":
            raise SegmentError(f"{name!r} is a list: test membership as 'value' in {name}", column_of(node))
        if value.kind != kind:
            raise SegmentError(
                f"{name!r} holds {kind} values; it cannot be compared with {value.value!r}", column_of(node)
            )
        if kind == "boolean" and isinstance(op, _ORDERING):
            raise SegmentError(f"{name!r} is true or false: compare it with == or !=", column_of(node))
        return value

    # -- SQL for one dialect -------------------------------------------------------------------------

    def _typed(self, name: str, kind: AttributeType) -> ColumnElement[Any]:
        """The field as a SQL value of `kind`, NULL when absent or of another type."""
        if name in _CORE_TYPES:
            return customers.c[name]
        attrs = customers.c.attributes
        if self.dialect == "postgresql":
            raw = attrs.op("->")(sa.literal(name))
            text = attrs.op("->>", return_type=sa.Text)(sa.literal(name))
            json_kind = {"number": "number", "boolean": "boolean", "list": "array"}.get(kind, "string")
            guard = sa.func.jsonb_typeof(raw) == json_kind
            cast: ColumnElement[Any] = {
                "number": sa.cast(text, sa.Numeric),
                "boolean": sa.cast(text, sa.Boolean),
                "list": raw,
            }.get(kind, text)
            return sa.case((guard, cast), else_=sa.null())
        path = '$."' + name + '"'
        sqlite_kinds = {"number": ("integer", "real"), "boolean": ("true", "false"), "list": ("array",)}
        guard = sa.func.json_type(attrs, path).in_(sqlite_kinds.get(kind, ("text",)))
        # Typed as what it holds, so SQLAlchemy applies text, number or boolean operators to it, not JSON ones.
        value_type = {"number": sa.Numeric(), "boolean": sa.Boolean(), "list": sa.JSON()}.get(kind, sa.Text())
        return sa.case((guard, sa.func.json_extract(attrs, path, type_=value_type)), else_=sa.null())

    def _bind(self, value: _Value) -> Any:
        if value.kind == "number" and self.dialect == "postgresql":
            return sa.literal(Decimal(repr(value.value)), sa.Numeric)
        if value.kind == "number" and isinstance(value.value, int) and value.value not in _INT64:
            # SQLite integers are 64-bit; a larger literal compares as a float (stored numbers that large
            # are floats in SQLite's JSON anyway).
            try:
                return sa.literal(float(value.value), sa.Float)
            except OverflowError:
                return sa.literal(float("inf") if value.value > 0 else float("-inf"), sa.Float)
        if value.kind == "boolean":
            if self.dialect == "postgresql":
                return sa.literal(bool(value.value), sa.Boolean)
            return sa.literal(1 if value.value else 0, sa.Integer)
        return sa.literal(value.value)

    def _compare(
        self, name: str, kind: AttributeType, op: ast.cmpop, value: _Value, node: ast.AST
    ) -> ColumnElement[bool]:
        field = self._typed(name, kind)
        if self.dialect == "postgresql" and kind in ("string", "date") and isinstance(op, _ORDERING):
            field = field.collate("C")
        clause = _OPS[type(op)](field, self._bind(value))
        return sa.func.coalesce(clause, sa.false(), type_=sa.Boolean)

    def _present(self, name: str, kind: AttributeType | None) -> ColumnElement[bool]:
        if name in _CORE_TYPES:
            return customers.c[name].is_not(None)
        if kind is None:
            return sa.false()
        return self._present_typed(name, kind)

    def _present_typed(self, name: str, kind: AttributeType) -> ColumnElement[bool]:
        return self._typed(name, kind).is_not(None)


def _join(parts: list[ColumnElement[bool]], conjunction: str) -> ColumnElement[bool]:
    """`a AND b AND ...` (or OR); long lists as a balanced tree of groups, so SQLite's parser stays shallow."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= _GROUP:
        return sa.and_(*parts) if conjunction == "AND" else sa.or_(*parts)
    middle = len(parts) // 2
    left, right = _join(parts[:middle], conjunction), _join(parts[middle:], conjunction)
    return Grouping(left).bool_op(conjunction)(Grouping(right))


def compile_segment(text: str, catalog: dict[str, AttributeType], dialect: str, today: date) -> ColumnElement[bool]:
    """The SQL clause for a segment; unknown names are errors once any customer attribute is known."""
    tree = parse_segment(text)
    return SegmentCompiler(catalog, dialect, today, strict=bool(catalog)).compile(tree)


def check_segment(text: str, catalog: dict[str, AttributeType] | None) -> None:
    """Raise SegmentError for anything wrong with `text`; field names and types are checked when a catalog
    of known attributes is given."""
    tree = parse_segment(text)
    if catalog is not None:
        SegmentCompiler(catalog, "sqlite", date.today(), strict=True).compile(tree)
