"""Templates: checked when a campaign is validated, compiled once per run, rendered in a sandbox.

Jinja2's immutable sandbox with StrictUndefined: a template cannot reach Python internals, cannot change
the values it is given, and a value a customer lacks is an error (the planner suppresses that customer
with `missing_data`) rather than a blank. HTML bodies escape values; text bodies and SMS do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach.errors import Problem

# Names every template may use besides the customer's fields and attributes.
CONTEXT_NAMES = frozenset({"customer", "campaign", "step", "unsubscribe_url"})


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=False)
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


class RenderError(Exception):
    """A template failed for one customer (a value of the wrong kind, a filter that refused it)."""


class MissingData(RenderError):
    """A customer lacks a value the template needs."""


def check_template(source: TemplateText, known_names: Iterable[str] | None) -> list[Problem]:
    """Problems with a template: syntax, reaching for `_private` attributes, names no customer has."""
    env = HTML_ENV if source.html else TEXT_ENV
    try:
        tree = env.parse(source.text)
    except TemplateSyntaxError as exc:
        line, col = source.locate(exc.lineno or 1)
        return [Problem(source.path, line, col, f"template does not parse: {exc.message}")]
    problems = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        name = _private_name(node)
        if name is not None:
            line, col = source.locate(node.lineno)
            problems.append(Problem(source.path, line, col, f"templates may not use names starting with _ ({name!r})"))
    if known_names is not None and not problems:
        allowed = set(known_names) | CONTEXT_NAMES
        for name in sorted(meta.find_undeclared_variables(tree) - allowed):
            line, col = source.locate(_first_use(tree, name))
            problems.append(Problem(source.path, line, col, f"no customer has a field or attribute named {name!r}"))
    return problems


def _private_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
        return str(node.arg.value)
    if isinstance(node, nodes.Name) and node.name.startswith("_"):
        return node.name
    return None


def _first_use(tree: nodes.Template, name: str) -> int:
    for node in tree.find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return 1


def compile_template(source: TemplateText) -> Template:
    env = HTML_ENV if source.html else TEXT_ENV
    return env.from_string(source.text)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render in the sandbox; a missing value raises MissingData naming it, other failures RenderError."""
    try:
        return template.render(context).strip()
    except UndefinedError as exc:
        raise MissingData(str(exc.message)) from None
    except SecurityError as exc:
        raise RenderError(f"template tried something unsafe: {exc}") from None
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
