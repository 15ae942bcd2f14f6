"""Templates: checked when a campaign is validated, compiled once per run, rendered in a sandbox.

Jinja2's immutable sandbox with StrictUndefined: a template cannot reach Python internals, cannot change
the values it is given, cannot compute or build past the bounds of template_limits, and a value a customer
lacks is an error (the planner suppresses that customer with `missing_data`) rather than a blank. HTML
bodies escape values; text bodies and SMS do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateAssertionError,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError

from outreach.campaigns.constant_limits import operator_column, overreaching
from outreach.campaigns.template_filters import FILTERS, UNKNOWN, FilterError, check_filter
from outreach.campaigns.template_limits import TemplateLimitError
from outreach.campaigns.template_sandbox import BoundedSandbox
from outreach.core.errors import OutreachError, Problem

# What a template nested past what Jinja can parse or compile (a hundred brackets, hundreds of `+`) is told.
TOO_DEEP = "the template nests expressions too deeply to compile: write it flatter"

# Names every template may use besides the customer's fields and attributes.
CONTEXT_NAMES = frozenset({"customer", "campaign", "step", "unsubscribe_url"})


def _environment(autoescape: bool) -> BoundedSandbox:
    # money, number, date, datetime in the customer's locale, beside Jinja's own filters
    env = BoundedSandbox(FILTERS, undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=False)
    env.globals.clear()  # no range(), lipsum() and friends: a message needs none of them
    return env


TEXT_ENV = _environment(autoescape=False)
HTML_ENV = _environment(autoescape=True)


@dataclass(frozen=True)
class TemplateText:
    """A template's source and how to turn a line inside it into a position in the file it came from."""

    text: str
    path: str
    locate: Callable[[int], tuple[int, int | None]]
    html: bool = False


class RenderError(OutreachError):
    """A template failed for one customer (a value of the wrong kind, a filter that refused it)."""


class MissingData(RenderError):
    """A customer lacks a value the template needs."""


def check_template(source: TemplateText, known_names: Iterable[str] | None) -> list[Problem]:
    """Problems with a template: syntax, unknown filters, reaching for `_private` attributes, including other
    templates, and (given `known_names`) names no customer has.

    `source.locate(line)` gives the file position of the start of a template line. A source may also offer
    `locate_column(line, col)`, the file position of any character; then names are located exactly.
    """
    env = HTML_ENV if source.html else TEXT_ENV
    try:
        tree = env.parse(source.text)
        env.compile(tree)  # unknown filters and tests are only found when compiling
    except TemplateSyntaxError as exc:
        line, col = source.locate(exc.lineno or 1)
        what = "template error" if isinstance(exc, TemplateAssertionError) else "template does not parse"
        return [Problem(source.path, line, col, f"{what}: {exc.message or 'syntax error'}")]
    except (RecursionError, SyntaxError):  # Python's limits, in Jinja's parser or the code it writes: not a hang
        line, col = source.locate(1)
        return [Problem(source.path, line, col, f"template error: {TOO_DEEP}")]
    problems: list[Problem] = []
    taken: dict[tuple[int, str], int] = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter)):
        name = _private_name(node)
        if name is not None:
            key = (int(node.lineno), name)
            nth = taken.get(key, 0)
            taken[key] = nth + 1
            line, col = _position(source, int(node.lineno), _name_column(source.text, int(node.lineno), name, nth))
            problems.append(Problem(source.path, line, col, f"templates may not use names starting with _ ({name!r})"))
    problems.extend(_filter_problems(source, tree))
    problems.extend(_limit_problems(source, tree))
    for statement in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        line, col = source.locate(int(statement.lineno))
        problems.append(Problem(source.path, line, col, "templates cannot include, import or extend other templates"))
    if known_names is not None:
        allowed = set(known_names) | CONTEXT_NAMES
        unknown = {n for n in meta.find_undeclared_variables(tree) - allowed if not n.startswith("_")}
        for name in sorted(unknown):
            lineno, column = _first_use(tree, source.text, name)
            line, col = _position(source, lineno, column)
            problems.append(Problem(source.path, line, col, f"no customer has a field or attribute named {name!r}"))
    return sorted(set(problems), key=lambda p: (p.line or 0, p.col or 0, p.message))


def _filter_problems(source: TemplateText, tree: nodes.Template) -> list[Problem]:
    """Uses of money, number, date and datetime that fail whatever the customer: a wrong argument, an unknown
    currency, locale, time zone or format written in the template, a constant that is not a number or date."""
    problems: list[Problem] = []
    taken: dict[tuple[int, str], int] = {}
    for node in tree.find_all(nodes.Filter):
        if node.name not in FILTERS:
            continue
        key = (int(node.lineno), node.name)
        nth = taken.get(key, 0)
        taken[key] = nth + 1
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            continue
        value = _constant(node.node)
        args = [_constant(arg) for arg in node.args]
        kwargs = {str(pair.key): _constant(pair.value) for pair in node.kwargs}  # Keyword nodes, typed as Pair
        complaint = check_filter(node.name, value, args, kwargs)
        if complaint is not None:
            column = _name_column(source.text, int(node.lineno), node.name, nth)
            line, col = _position(source, int(node.lineno), column)
            problems.append(Problem(source.path, line, col, f"template error: {complaint}"))
    return problems


def _limit_problems(source: TemplateText, tree: nodes.Template) -> list[Problem]:
    """Expressions that go past a template limit whatever the customer (`{{ 9**(9**9) }}`), where written."""
    problems: list[Problem] = []
    for found in overreaching(tree):
        if found.is_operator:
            column = operator_column(source.text, found.lineno, found.token, found.nth)
        else:
            column = _name_column(source.text, found.lineno, found.token, found.nth)
        line, col = _position(source, found.lineno, column)
        problems.append(Problem(source.path, line, col, f"template error: {found.message}"))
    return problems


def _constant(node: nodes.Expr | None) -> Any:
    """The value of a literal (`'CNY'`, `2`, `none`), or UNKNOWN for what only rendering knows."""
    if node is None:
        return UNKNOWN
    try:
        value = node.as_const()
    except nodes.Impossible:
        return UNKNOWN
    return UNKNOWN if isinstance(value, Undefined) else value  # what the sandbox refused: reported elsewhere


def _position(source: TemplateText, line: int, column: int | None) -> tuple[int, int | None]:
    locate_column = getattr(source, "locate_column", None)
    if column is not None and callable(locate_column):
        found: tuple[int, int | None] = locate_column(line, column)
        return found
    return source.locate(line)


def _private_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
        return str(node.arg.value)
    if isinstance(node, nodes.Name) and node.name.startswith("_"):
        return node.name
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        arg = node.args[0]
        if isinstance(arg, nodes.Const) and str(arg.value).startswith("_"):
            return str(arg.value)
    return None


_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def _name_column(text: str, lineno: int, name: str, nth: int = 0, *, variable: bool = False) -> int | None:
    """1-based column, within template line `lineno`, of the `nth` use of `name` inside a {{ }} or {% %} tag
    (as a variable: not after a dot or a quote), or None when it cannot be found."""
    line_start = 0
    for _ in range(lineno - 1):
        line_start = text.find("\n", line_start) + 1
        if line_start == 0:
            return None
    line_end = text.find("\n", line_start)
    line_end = len(text) if line_end < 0 else line_end
    before = r"(?<![\w.'\"])" if variable else r"(?<!\w)"
    pattern = re.compile(before + re.escape(name) + r"(?!\w)")
    found = [
        m.start()
        for tag in _TAG.finditer(text)
        for m in pattern.finditer(text, tag.start(), tag.end())
        if line_start <= m.start() < line_end
    ]
    if not found:
        return None
    return found[min(nth, len(found) - 1)] - line_start + 1


def _first_use(tree: nodes.Template, text: str, name: str) -> tuple[int, int | None]:
    for node in tree.find_all(nodes.Name):
        if node.name == name:
            lineno = int(node.lineno)
            return lineno, _name_column(text, lineno, name, variable=True)
    return 1, None


def compile_template(source: TemplateText) -> Template:
    env = HTML_ENV if source.html else TEXT_ENV
    return env.from_string(source.text)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render in the sandbox; a missing value raises MissingData naming it, other failures RenderError."""
    try:
        return template.render(context).strip()
    except UndefinedError as exc:
        raise MissingData(str(exc.message)) from None
    except TemplateLimitError as exc:  # the bound's own words: "an exponent in a template is at most 100"
        raise RenderError(str(exc)) from None
    except RecursionError:
        raise RenderError("the template calls itself too deeply (macros, recursive loops)") from None
    except SecurityError as exc:
        raise RenderError(f"template tried something unsafe: {exc}") from None
    except FilterError as exc:  # the filter's own words: "money: 'lots' is not a number"
        raise RenderError(str(exc)) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from None


def customer_context(customer: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables of a customer: core fields and attributes that have a value, and `customer`."""
    context: dict[str, Any] = {k: v for k, v in (customer.get("attributes") or {}).items() if v is not None}
    for key in ("id", "name", "email", "phone", "country", "locale", "timezone"):
        if customer.get(key) is not None:
            context[key] = customer[key]
    context["customer"] = dict(context)
    return context
