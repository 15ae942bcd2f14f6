"""Segment expressions: a safe subset of Python expressions, checked, then compiled to SQL.

    status == 'active' and age >= 18 and 'savings' in products and city in ('Shanghai', 'Beijing')

Nothing of an expression is ever evaluated in Python: it is parsed with `ast`, every node is checked
against a short list of allowed forms, and the result is a SQLAlchemy clause that runs the same on SQLite
and PostgreSQL.

Semantics, the same on both databases: a comparison is true only when the field has a value of the
compared type and the comparison holds; otherwise it is false (never NULL), so `not` and `!=` behave as a
marketer reads them: `not (age >= 18)` includes customers without an age, `city != 'Beijing'` does not
include customers without a city. Text compares by code point. Dates are ISO text (`YYYY-MM-DD`, or UTC
`YYYY-MM-DDTHH:MM:SSZ`), so they compare in time order.

Relative dates (docs/segments.md says the same for marketers): `today()`, `days_ago(N)` and
`days_from_now(N)` are days of the customer's own calendar: the local date, in the profile's time zone, at
the moment the segment is compiled (the engine's clock, `outreach.store.database.utcnow`, which tests shift), N days
back or ahead. A profile without a time zone, or with one the engine does not know, uses the default zone
(the campaign's schedule zone, else `default_timezone`, as quiet hours do); there is one branch of a SQL
CASE per group of zones that share that day, computed here in Python, so both databases agree and neither
needs time-zone rules of its own. A date-time value is compared by the customer's local date: it is on
`today()` when it falls between the customer's local midnights, so `paid_at == today()` holds all the
customer's day and `paid_at <= today()` includes today. A text field compared with a relative date compares
with that date as `YYYY-MM-DD` text.

`month_day(field) == month_day(today())` compares month and day (the year is ignored): anniversaries and
birthdays. The 29 February rule: on 28 February of a year that is not a leap year, a 29 February date also
matches, so a customer born on 29 February is greeted every year. A date-time's month and day are those of
its UTC date (store anniversaries as plain dates). `month_day(field)` may also be compared with 'MM-DD' text.
"""

from __future__ import annotations

import ast
import calendar
import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, Grouping

from outreach.core.time_zones import zone_or_none
from outreach.segments.syntax import FUNCTIONS, SegmentError, column_of, describe, parse_segment
from outreach.store.database import utcnow
from outreach.store.fields import CORE_FIELDS, AttributeType, parse_date
from outreach.store.json_lists import list_contains
from outreach.store.schema import customers

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


# A time zone name as zoneinfo spells them: safe to write into SQL as a literal.
_ZONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_+\-]{0,63}$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_DATE_HINT = "'YYYY-MM-DD', today(), days_ago(N) or days_from_now(N)"


@dataclass(frozen=True)
class _Relative:
    """today(), days_ago(N) or days_from_now(N): `days` from the customer's local today (negative: past)."""

    days: int
    source: str  # as written, for messages

    def __repr__(self) -> str:
        return self.source


@dataclass(frozen=True)
class _Value:
    """A literal on the other side of a comparison, with its segment type."""

    value: Any  # a _Relative for today(), days_ago(N), days_from_now(N)
    kind: AttributeType | None  # None for the None literal


# A day as the SQL compares it for one group of zones: the date ('YYYY-MM-DD') and, for date-time values,
# the UTC moments (as stored: 'YYYY-MM-DDTHH:MM:SSZ') of its first and of the next day's first second.
_Day = tuple[str, str, str]


@functools.cache
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _moment_text(day: date, zone: ZoneInfo) -> str:
    """The UTC moment local midnight of `day` is (the first moment of the day after a DST gap at midnight)."""
    try:
        moment = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError):  # before year 1 (nothing stored is earlier) or after 9999 (nor later)
        return "" if day.year == 1 else "~"
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _day_in(now: datetime, zone: ZoneInfo, days: int) -> _Day:
    """The customer's day `days` from their today in `zone`; OverflowError outside years 1-9999."""
    day = now.astimezone(zone).date() + timedelta(days=days)
    following = _moment_text(day + timedelta(days=1), zone) if day < date.max else "~"
    return day.isoformat(), _moment_text(day, zone), following


@functools.lru_cache(maxsize=256)
def _zone_days(
    now: datetime, days: int, default: str, zones: tuple[str, ...] | None, moments: bool
) -> tuple[_Day, tuple[tuple[_Day, tuple[str, ...]], ...]]:
    """The day of the default zone, and the groups of the other zones that have another day (another date, or
    with `moments` other midnights)."""

    def key(day: _Day) -> _Day:
        return day if moments else (day[0], "", "")

    fallback = zone_or_none(default) or ZoneInfo("UTC")
    base = key(_day_in(now, fallback, days))
    groups: dict[_Day, list[str]] = {}
    for name in _all_zones() if zones is None else zones:
        zone = zone_or_none(name) if _ZONE_NAME.match(name) else None
        if zone is None:
            continue  # a time zone the engine does not know: such profiles use the default zone
        day = key(_day_in(now, zone, days))
        if day != base:
            groups.setdefault(day, []).append(name)
    return base, tuple((day, tuple(names)) for day, names in sorted(groups.items()))


def _moment(today: date) -> datetime:
    """The moment a segment is compiled for: the engine's clock, if it is on `today` (UTC); else the middle
    of that day (a caller asking about another day)."""
    clock = utcnow()
    return clock if clock.date() == today else datetime.combine(today, time(12), tzinfo=UTC)


class SegmentCompiler:
    """Turns a checked expression into a SQL clause for one dialect, given the attribute types."""

    def __init__(
        self,
        catalog: dict[str, AttributeType],
        dialect: str,
        today: date,
        *,
        strict: bool = True,
        now: datetime | None = None,
        default_zone: str | None = None,
        zones: Iterable[str] | None = None,
    ) -> None:
        self.catalog = catalog
        self.dialect = dialect
        self.today = today
        # Without strictness (an empty store), unknown names are simply never matched.
        self.strict = strict
        # With `collect`, unknown names are noted here rather than raised, so that all of them are reported.
        self.collect = False
        self.unknown: list[SegmentError] = []
        self.now = (now or _moment(today)).astimezone(UTC)
        self.default_zone = default_zone if zone_or_none(default_zone) is not None else "UTC"
        # The zones profiles may have (None: every zone the engine knows); others use the default zone.
        self.zones = None if zones is None else tuple(sorted({z for z in zones if z}))

    def compile(self, tree: ast.expr) -> ColumnElement[bool]:
        return self._condition(tree)

    def is_field(self, name: str) -> bool:
        return name in _CORE_TYPES or name in self.catalog

    def field_type(self, name: str, node: ast.AST, *, as_text: bool = False) -> AttributeType | None:
        """The type of a field; an unknown name is an error (with the nearest known name, and with `as_text`,
        where it stands as a value, how to write it as text)."""
        if name in _CORE_TYPES:
            return _CORE_TYPES[name]
        if name in self.catalog:
            return self.catalog[name]
        if name in FUNCTIONS:
            call = {"today": "today()", "month_day": "month_day(field)"}.get(name, f"{name}(N)")
            raise SegmentError(f"{name} is a function: call it as {call}", column_of(node))
        if self.strict:
            message = f"no customer has a field or attribute named {name!r}"
            close = difflib.get_close_matches(name, [*_CORE_TYPES, *self.catalog], n=1, cutoff=0.7)
            if close:
                message += f"; did you mean {close[0]!r}?"
            if as_text:
                message += f"; to compare with the text {name} write {name!r}"
            if not self.collect:
                raise SegmentError(message, column_of(node))
            self.unknown.append(SegmentError(message, column_of(node)))
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
        if _month_day_of_field(left) or _month_day_of_field(right):
            return self._month_day_pair(left, op, right)
        if isinstance(left, ast.Name) and not isinstance(right, ast.Name):
            name, value_node = left, right
        elif isinstance(right, ast.Name) and not isinstance(left, ast.Name):
            if isinstance(op, ast.Is | ast.IsNot):
                raise SegmentError("write `field is None`, with the field first", column_of(left))
            name, value_node, op = right, left, _FLIPPED[type(op)]()
        elif isinstance(left, ast.Name):
            assert isinstance(right, ast.Name)
            # an unknown name, or days_ago without (N), is the first thing to fix
            self.field_type(left.id, left, as_text=self.is_field(right.id))
            self.field_type(right.id, right, as_text=self.is_field(left.id))
            message = "compare a field with a value, not with another field"
            if not self.is_field(right.id):  # an empty store: nothing is known yet
                message += f"; to compare with the text {right.id} write {right.id!r}"
            raise SegmentError(message, column_of(right))
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
            list_name = right.id

            def contains_day(day: _Day) -> ColumnElement[bool]:
                return list_contains(customers.c.attributes, day[0], self.dialect, key=list_name)

            if isinstance(value.value, _Relative):
                contains = self._per_zone(value.value, contains_day, moments=False)
            else:
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
            if _month_day_call(node):
                raise SegmentError(
                    "compare month_day(...) with month_day of a date field, like "
                    "month_day(birthday) == month_day(today())",
                    column_of(node),
                )
            return _Value(self._relative(node), "date")
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

    def _relative(self, node: ast.Call) -> _Relative:
        """today(), days_ago(N) or days_from_now(N) (their form is checked by segment_syntax)."""
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name == "today":
            return _Relative(0, "today()")
        days = node.args[0]
        assert isinstance(days, ast.Constant) and isinstance(days.value, int)
        relative = _Relative(-days.value if name == "days_ago" else days.value, f"{name}({days.value})")
        try:  # in range for the default zone and every other (their days differ by one at most)
            self._days(relative, moments=False)
        except OverflowError:
            edge = "before the year 1" if name == "days_ago" else "after the year 9999"
            raise SegmentError(f"{relative.source} is {edge}", column_of(node)) from None
        return relative

    def _days(self, relative: _Relative, *, moments: bool) -> tuple[_Day, tuple[tuple[_Day, tuple[str, ...]], ...]]:
        return _zone_days(self.now, relative.days, self.default_zone, self.zones, moments)

    def _per_zone(
        self, relative: _Relative, clause: Callable[[_Day], ColumnElement[bool]], *, moments: bool
    ) -> ColumnElement[bool]:
        """`clause` for the customer's own day: a CASE over groups of time zones, the default zone's day for
        profiles without a (known) zone. Every branch is true or false, never NULL."""
        base, groups = self._days(relative, moments=moments)
        if not groups:
            return clause(base)
        zone = customers.c.timezone
        whens = [(zone.in_([sa.literal_column(f"'{name}'") for name in names]), clause(day)) for day, names in groups]
        return sa.case(*whens, else_=clause(base))

    def _month_day_pair(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ColumnElement[bool]:
        """month_day(field) == month_day(today()) (or days_ago, days_from_now), or == 'MM-DD'."""
        field_node, value_node = (left, right) if _month_day_of_field(left) else (right, left)
        name = _month_day_of_field(field_node)
        assert name is not None
        other = _month_day_of_field(value_node)
        if other is not None:
            self.field_type(name.id, name)
            self.field_type(other.id, other)
            raise SegmentError("compare month_day(field) with a day, not with another field", column_of(value_node))
        if isinstance(op, ast.Is | ast.IsNot):
            raise SegmentError(f"`is` compares a field with None: write {name.id} is None", column_of(field_node))
        if not isinstance(op, ast.Eq | ast.NotEq):
            raise SegmentError("month_day(...) compares with == or != only", column_of(value_node))
        kind = self.field_type(name.id, name)
        if isinstance(value_node, ast.Call) and _month_day_call(value_node):
            inner = value_node.args[0]
            assert isinstance(inner, ast.Call)
            target: _Relative | str = self._relative(inner)
        elif isinstance(value_node, ast.Constant) and isinstance(value_node.value, str):
            target = value_node.value
            match = _MONTH_DAY.match(target)
            try:
                valid = match is not None and bool(date(2000, int(match[1]), int(match[2])))
            except ValueError:
                valid = False
            if not valid:
                raise SegmentError(
                    f"month_day(...) compares with 'MM-DD' text, like '12-25'; {target!r} is not one",
                    column_of(value_node),
                )
        else:
            raise SegmentError(
                "compare month_day(field) with month_day(today()), month_day(days_from_now(N)) or 'MM-DD' text",
                column_of(value_node),
            )
        if kind is None:
            return sa.false()
        if kind != "date":
            raise SegmentError(f"month_day takes a date field; {name.id!r} holds {kind} values", column_of(name))
        value = self._typed(name.id, "date")
        dated = sa.and_(
            sa.func.length(value) >= 10, sa.func.substr(value, 5, 1) == "-", sa.func.substr(value, 8, 1) == "-"
        )
        month_day = sa.func.substr(value, 6, 5)
        negate = isinstance(op, ast.NotEq)

        def matches(days: list[str]) -> ColumnElement[bool]:
            held = month_day.in_([sa.literal(d) for d in days])
            return sa.func.coalesce(sa.and_(dated, sa.not_(held) if negate else held), sa.false(), type_=sa.Boolean)

        if isinstance(target, str):
            return matches([target])
        return self._per_zone(target, lambda day: matches(_anniversaries(day[0])), moments=False)

    def _relative_compare(
        self, name: str, kind: AttributeType, op: ast.cmpop, relative: _Relative
    ) -> ColumnElement[bool]:
        """A field against the customer's today (or N days from it): a date by its text, a date-time by where
        it falls between the customer's local midnights."""
        raw = self._typed(name, kind)
        field = raw.collate("C") if self.dialect == "postgresql" else raw
        compare = _OPS[type(op)]
        if kind != "date":  # text compared with the date as text
            return self._per_zone(
                relative,
                lambda day: sa.func.coalesce(compare(field, sa.literal(day[0])), sa.false(), type_=sa.Boolean),
                moments=False,
            )

        def on_day(day: _Day) -> ColumnElement[bool]:
            text, start, end = (sa.literal(v) for v in day)
            moment: ColumnElement[bool]
            if isinstance(op, ast.Eq):
                moment = sa.and_(field >= start, field < end)
            elif isinstance(op, ast.NotEq):
                moment = sa.or_(field < start, field >= end)
            elif isinstance(op, ast.Lt):
                moment = field < start
            elif isinstance(op, ast.LtE):
                moment = field < end
            elif isinstance(op, ast.Gt):
                moment = field >= end
            else:
                moment = field >= start
            clause = sa.case((sa.func.length(raw) > 10, moment), else_=compare(field, text))
            return sa.func.coalesce(clause, sa.false(), type_=sa.Boolean)

        return self._per_zone(relative, on_day, moments=True)

    def _fit(self, name: str, kind: AttributeType, value: _Value, node: ast.expr, op: ast.cmpop) -> _Value:
        """Check a literal against the field's type; date fields take ISO text or a relative date."""
        if kind == "date" and value.kind == "string":
            try:
                normalised = parse_date(str(value.value))
            except OverflowError:  # a time zone that moves the moment out of years 1-9999
                normalised = None
            if normalised is None:
                raise SegmentError(f"{name!r} holds dates: compare it with {_DATE_HINT}", column_of(node))
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
        if isinstance(value.value, _Relative):
            return self._relative_compare(name, kind, op, value.value)
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


def _month_day_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "month_day"


def _month_day_of_field(node: ast.AST) -> ast.Name | None:
    """The field of `month_day(field)`, else None."""
    if isinstance(node, ast.Call) and _month_day_call(node) and isinstance(node.args[0], ast.Name):
        return node.args[0]
    return None


def _anniversaries(day: str) -> list[str]:
    """The month-days that have their anniversary on `day`: 29 February's on 28 February of a common year."""
    on = date.fromisoformat(day)
    if (on.month, on.day) == (2, 28) and not calendar.isleap(on.year):
        return ["02-28", "02-29"]
    return [day[5:]]


def _join(parts: list[ColumnElement[bool]], conjunction: str) -> ColumnElement[bool]:
    """`a AND b AND ...` (or OR); long lists as a balanced tree of groups, so SQLite's parser stays shallow."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= _GROUP:
        return sa.and_(*parts) if conjunction == "AND" else sa.or_(*parts)
    middle = len(parts) // 2
    left, right = _join(parts[:middle], conjunction), _join(parts[middle:], conjunction)
    return Grouping(left).bool_op(conjunction)(Grouping(right))


def compile_segment(
    text: str,
    catalog: dict[str, AttributeType],
    dialect: str,
    today: date,
    *,
    now: datetime | None = None,
    default_zone: str | None = None,
    zones: Iterable[str] | None = None,
) -> ColumnElement[bool]:
    """The SQL clause for a segment; unknown names are errors once any customer attribute is known.

    Relative dates are the customers' local days at `now` (by default the engine's clock when it is on
    `today`, UTC); profiles without a known time zone use `default_zone` (UTC when not given). `zones` are
    the time zones profiles have (`SELECT DISTINCT timezone FROM customers`): without them the SQL holds a
    branch for every zone the engine knows, which is correct but longer."""
    tree = parse_segment(text)
    compiler = SegmentCompiler(
        catalog, dialect, today, strict=bool(catalog), now=now, default_zone=default_zone, zones=zones
    )
    return compiler.compile(tree)


def check_segment(text: str, catalog: dict[str, AttributeType] | None) -> None:
    """Raise SegmentError for anything wrong with `text` (the first of `segment_errors`)."""
    errors = segment_errors(text, catalog)
    if errors:
        raise errors[0]


def segment_errors(text: str, catalog: dict[str, AttributeType] | None) -> list[SegmentError]:
    """Everything wrong with `text`, in order; field names and types are checked when a catalog of known
    attributes is given. Every unknown name is reported (they are the first thing to fix); otherwise the
    first other problem."""
    try:
        tree = parse_segment(text)
    except SegmentError as exc:
        return [exc]
    if catalog is None:
        return []
    compiler = SegmentCompiler(catalog, "sqlite", date.today(), strict=True)
    compiler.collect = True
    try:
        compiler.compile(tree)
    except SegmentError as exc:
        return compiler.unknown or [exc]
    return compiler.unknown
