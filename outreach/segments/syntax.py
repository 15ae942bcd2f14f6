"""The form of a segment expression: parsed with `ast`, every node checked against the few forms allowed.

Nothing here knows field types or SQL (see `segments.py`); this only refuses what a segment may never be.
"""

from __future__ import annotations

import ast
import difflib
import re

from outreach.core.errors import OutreachError

# Deeper nesting than this is refused before Python's own parser or our walk could run out of stack.
MAX_DEPTH = 100
# The functions of the language: the relative dates (a day counted from the customer's today), and month_day.
RELATIVE_DATES = ("days_ago", "days_from_now", "today")
FUNCTIONS = (*RELATIVE_DATES, "month_day")
CALLABLE = "the functions a segment may call are days_ago(N), days_from_now(N), today() and month_day(date)"
# What a marketer types from other languages, at the place Python's parser stops: the hint that fixes it.
_PARSE_HINTS = (
    (re.compile(r"=>"), "=> is not an operator: use >="),
    (re.compile(r"=<"), "=< is not an operator: use <="),
    (re.compile(r"=(?!=)"), "use == to compare"),
    (re.compile(r"<>"), "use != for 'is not equal to'"),
    (re.compile(r"&&"), "use and"),
    (re.compile(r"\|\|"), "use or"),
    (re.compile(r"!(?!=)"), "use not"),
    (re.compile(r"(AND|OR|NOT|And|Or|Not)\b"), "write and, or, not in lower case"),
)


class SegmentError(OutreachError):
    """A segment expression that cannot be used; `col` is 1-based within the expression."""

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col


def parse_segment(text: str) -> ast.expr:
    """Parse and check the form of an expression (no field types yet).

    Columns in errors count characters (not UTF-8 bytes, as `ast` does) of the text as given, leading
    blanks included.
    """
    source = text.strip() or "True"
    blanks = text[: len(text) - len(text.lstrip())]
    lead = len(blanks) - (blanks.rfind("\n") + 1)  # columns the first line of `source` is shifted by
    if "\x00" in text:
        at = text.index("\x00")
        raise SegmentError("segment does not parse: it contains a NUL character", at - text.rfind("\n", 0, at))
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        lines = source.split("\n")
        if exc.offset:
            line, col = exc.lineno or 1, exc.offset
        else:  # the text ended too soon: point just past its end
            line, col = len(lines), len(lines[-1]) + 1
        hint = _parse_hint(lines[line - 1][col - 1 :] if 0 < line <= len(lines) else "")
        message = f"segment does not parse: {exc.msg}" + (f"; {hint}" if hint else "")
        raise SegmentError(message, max(col + (lead if line == 1 else 0), 1)) from None
    except (RecursionError, MemoryError):
        raise SegmentError(f"segment is nested too deeply (more than {MAX_DEPTH} levels)", 1) from None
    _to_character_columns(tree, source, lead)
    _check_form(tree.body, 0)
    return tree.body


def _parse_hint(rest: str) -> str | None:
    """A hint for the text where the parser stopped (`city = 1`: use == to compare), if one applies."""
    for pattern, hint in _PARSE_HINTS:
        if pattern.match(rest):
            return hint
    return None


def _to_character_columns(tree: ast.AST, source: str, lead: int) -> None:
    lines = [line.encode() for line in source.split("\n")]
    for node in ast.walk(tree):
        if isinstance(node, ast.expr | ast.keyword | ast.arg):
            line = lines[node.lineno - 1] if 0 < node.lineno <= len(lines) else b""
            shift = lead if node.lineno == 1 else 0
            node.col_offset = len(line[: node.col_offset].decode(errors="replace")) + shift


def _check_form(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SegmentError(f"segment is nested too deeply (more than {MAX_DEPTH} levels)", column_of(node))
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_form(value, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_form(node.operand, depth + 1)
    elif isinstance(node, ast.Compare):
        for part in [node.left, *node.comparators]:
            _check_operand(part)
    elif isinstance(node, ast.Name):
        return
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in RELATIVE_DATES:
            raise SegmentError(
                f"{name}(...) is a date, not a condition: compare a field with it, like due_date == {name}(...)",
                column_of(node),
            )
        if name == "month_day":
            raise SegmentError(
                "month_day(...) is a month and day, not a condition: compare it, like "
                "month_day(birthday) == month_day(today())",
                column_of(node),
            )
        raise SegmentError(unknown_function(node), column_of(node))
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, bool):
            raise SegmentError("a segment must be a condition, not a lone value", column_of(node))
    else:
        raise SegmentError(f"{describe(node)} is not allowed in a segment", column_of(node))


def _check_operand(node: ast.AST) -> None:
    if isinstance(node, ast.Name):
        return
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str | int | float | bool)):
        return
    if isinstance(node, ast.Tuple | ast.List):
        for element in node.elts:
            if not (
                (isinstance(element, ast.Constant) and isinstance(element.value, str | int | float | bool))
                or _is_negative_literal(element)
            ):
                message = "a list in a segment holds only literal values"
                if isinstance(element, ast.Name):
                    message += f"; to list the text {element.id} write {element.id!r}"
                raise SegmentError(message, column_of(element))
        return
    if _is_negative_literal(node):
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name == "month_day":
            arg = node.args[0] if len(node.args) == 1 and not node.keywords else None
            if isinstance(arg, ast.Name):
                return
            if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id in RELATIVE_DATES:
                check_relative_date(arg)
                return
            raise SegmentError(
                "month_day takes a date field or a day: month_day(birthday), month_day(today()), "
                "month_day(days_from_now(N))",
                column_of(node),
            )
        if name in RELATIVE_DATES:
            check_relative_date(node)
            return
        raise SegmentError(unknown_function(node), column_of(node))
    raise SegmentError(f"{describe(node)} is not allowed in a segment", column_of(node))


def check_relative_date(node: ast.Call) -> None:
    """today() takes nothing; days_ago(N) and days_from_now(N) one whole number N >= 0."""
    assert isinstance(node.func, ast.Name)
    name = node.func.id
    if name == "today":
        if node.args or node.keywords:
            raise SegmentError("today() takes nothing: write today()", column_of(node))
        return
    arg = node.args[0] if len(node.args) == 1 and not node.keywords else None
    other = "days_from_now" if name == "days_ago" else "days_ago"
    when = "in the future" if name == "days_ago" else "in the past"
    if (
        isinstance(arg, ast.UnaryOp)
        and isinstance(arg.op, ast.USub)
        and isinstance(arg.operand, ast.Constant)
        and isinstance(arg.operand.value, int)
        and not isinstance(arg.operand.value, bool)
    ):
        days = arg.operand.value
        raise SegmentError(
            f"{name} takes a whole number of days >= 0; for a date {when} use {other}({days})", column_of(node)
        )
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, int) and not isinstance(arg.value, bool)):
        raise SegmentError(f"{name} takes one whole number of days, like {name}(30)", column_of(node))


def unknown_function(node: ast.Call) -> str:
    """Why a call is refused: the functions there are, and the nearest one to a mistyped name."""
    if isinstance(node.func, ast.Name):
        close = difflib.get_close_matches(node.func.id, FUNCTIONS, n=1, cutoff=0.7)
        if close:
            return f"{node.func.id!r} is not a segment function (did you mean {close[0]}?); {CALLABLE}"
    return CALLABLE


def _is_negative_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)


def describe(node: ast.AST) -> str:
    """What a refused node is, in a marketer's words."""
    names = {
        ast.Attribute: "attribute access (a.b)",
        ast.Subscript: "indexing (a[b])",
        ast.Call: "a function call",
        ast.Lambda: "lambda",
        ast.BinOp: "arithmetic",
        ast.IfExp: "a conditional expression",
        ast.NamedExpr: "assignment (:=)",
    }
    for kind, text in names.items():
        if isinstance(node, kind):
            return text
    return type(node).__name__


def column_of(node: ast.AST) -> int:
    """1-based column of a node (in characters, see parse_segment)."""
    return getattr(node, "col_offset", 0) + 1
