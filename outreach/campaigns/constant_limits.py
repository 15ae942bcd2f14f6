"""Expressions of a template that go past a bound whatever the customer (`{{ 9**(9**9) }}`, `{{ 'x' * 10**9 }}`,
`{{ '%999999999d' | format(1) }}`): found when the campaign is validated, each where it is written.

Only what the template writes is worked out (numbers, text, lists written in it), with the bounded operations
themselves, so finding the problem costs no more than refusing it at send time would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

from outreach.campaigns.filter_limits import FILTER_CHECKS
from outreach.campaigns.template_limits import INTERCEPTED_BINOPS, TemplateLimitError, bounded_binop

_UNKNOWN = object()  # what only rendering knows


@dataclass(frozen=True)
class Overreach:
    """A bound passed at template line `lineno`, by the `nth` use there of `token` (an operator, a filter)."""

    lineno: int
    token: str
    nth: int
    message: str
    is_operator: bool


def overreaching(tree: nodes.Template) -> list[Overreach]:
    """Every operator and repeating filter of `tree` that goes past a bound with the values written there."""
    found: list[Overreach] = []
    values: dict[int, Any] = {}
    ordered = list(_in_text_order(tree))
    position: dict[int, int] = {}  # node -> how many of its token come before it on its line
    taken: dict[tuple[int, str], int] = {}
    for node in ordered:
        token = _token(node)
        if token is not None:
            key = (int(node.lineno), token)
            position[id(node)] = taken.get(key, 0)
            taken[key] = position[id(node)] + 1

    def value_of(node: nodes.Node) -> Any:
        if id(node) not in values:
            values[id(node)] = evaluate(node)
        return values[id(node)]

    def evaluate(node: nodes.Node) -> Any:
        if isinstance(node, nodes.BinExpr) and node.operator in INTERCEPTED_BINOPS:
            left, right = value_of(node.left), value_of(node.right)
            if left is _UNKNOWN or right is _UNKNOWN:
                return _UNKNOWN
            try:
                return bounded_binop(node.operator, left, right, None)
            except TemplateLimitError as exc:
                found.append(Overreach(int(node.lineno), node.operator, position[id(node)], str(exc), True))
            except Exception:  # fails for every customer alike: rendering says how
                pass
            return _UNKNOWN
        if isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
            if node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None:
                return _UNKNOWN
            value = value_of(node.node)
            args = [value_of(arg) for arg in node.args]
            kwargs = {str(pair.key): value_of(pair.value) for pair in node.kwargs}
            if any(v is _UNKNOWN for v in (value, *args, *kwargs.values())):
                return _UNKNOWN
            try:
                FILTER_CHECKS[node.name](value, *args, **kwargs)
            except TemplateLimitError as exc:
                found.append(Overreach(int(node.lineno), node.name, position[id(node)], str(exc), False))
            except Exception:  # wrong arguments: the filter itself says so when it runs
                pass
            return _UNKNOWN
        if isinstance(node, (nodes.List, nodes.Tuple)):
            items = [value_of(item) for item in node.items]
            if any(item is _UNKNOWN for item in items):
                return _UNKNOWN
            return items if isinstance(node, nodes.List) else tuple(items)
        if isinstance(node, nodes.Expr):
            try:
                return node.as_const()  # Jinja's own folding: it does not fold the operators above
            except Exception:  # nodes.Impossible, or a constant that fails when used
                return _UNKNOWN
        return _UNKNOWN

    for node in ordered:
        if id(node) in position:
            value_of(node)
    return found


def _token(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.BinExpr) and node.operator in INTERCEPTED_BINOPS:
        return node.operator
    if isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
        return node.name
    return None


def _in_text_order(node: nodes.Node) -> Iterator[nodes.Node]:
    """The nodes under `node` about in the order they are written: an operator between its operands, a
    filter after what it filters."""
    if isinstance(node, nodes.BinExpr):
        yield from _in_text_order(node.left)
        yield node
        yield from _in_text_order(node.right)
        return
    if isinstance(node, nodes.Filter):
        if node.node is not None:
            yield from _in_text_order(node.node)
        yield node
        for child in node.iter_child_nodes(exclude=("node",)):
            yield from _in_text_order(child)
        return
    yield node
    for child in node.iter_child_nodes():
        yield from _in_text_order(child)


_TAG = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_OPERATOR = {
    "**": re.compile(r"\*\*"),
    "*": re.compile(r"(?<!\*)\*(?!\*)"),
    "+": re.compile(r"\+"),
    "%": re.compile(r"%"),
}


def operator_column(text: str, lineno: int, operator: str, nth: int) -> int | None:
    """1-based column, within template line `lineno`, of the `nth` `operator` written inside a tag (not in a
    quoted string), or None when it cannot be found."""
    line_start = 0
    for _ in range(lineno - 1):
        line_start = text.find("\n", line_start) + 1
        if line_start == 0:
            return None
    line_end = text.find("\n", line_start)
    line_end = len(text) if line_end < 0 else line_end
    found: list[int] = []
    for tag in _TAG.finditer(text):
        group = 1 if tag.group(1) is not None else 2
        start, end = tag.start(group), tag.end(group)
        inside = _STRING.sub(lambda m: " " * len(m.group()), text[start:end])  # blank out quoted text
        found.extend(start + m.start() for m in _OPERATOR[operator].finditer(inside))
    found = [index for index in found if line_start <= index < line_end]
    if not found:
        return None
    return found[min(nth, len(found) - 1)] - line_start + 1
