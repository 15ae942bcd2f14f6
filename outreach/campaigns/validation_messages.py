"""Pydantic's validation errors of a campaign file, put in a marketer's words and at their place in the file."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from outreach.campaigns.content_locales import looks_like_locale
from outreach.campaigns.model import Campaign
from outreach.campaigns.template_files import NAME_RULE
from outreach.core.errors import Problem
from outreach.core.yaml_source import YamlDocument


def pydantic_problems(doc: YamlDocument, exc: ValidationError) -> list[Problem]:
    """Each validation error at its place in the file, in words a marketer understands."""
    problems = []
    for error, loc in _without_union_tags(exc.errors(include_url=False)):
        kind = error["type"]
        if kind == "extra_forbidden" and loc:
            problems.append(doc.problem(loc, _unknown_key_message(loc), at_key=True))
        elif kind == "missing" and loc:
            parent = dotted(loc[:-1])
            message = f"missing required key {loc[-1]!r}"
            problems.append(doc.problem(loc[:-1], f"{parent}: {message}" if parent else message))
        elif "[key]" in error["loc"]:  # a mapping key that is refused (a language tag that is none)
            problems.append(doc.problem(loc, f"{dotted(loc[:-1])}: {_value_message(error, loc)}", at_key=True))
        else:
            where = dotted(loc)
            message = _value_message(error, loc)
            message = f"{where}: {message}" if where else message
            pos = (error.get("ctx") or {}).get("pos")
            if isinstance(pos, int) and isinstance(error.get("input"), str) and "\n" not in error["input"]:
                line, col = doc.text_position(loc, 1, pos + 1)  # a position inside the value
                problems.append(Problem(doc.path, line, col, message))
            else:
                problems.append(doc.problem(loc, message))
    return problems


def _is_union_tag(part: str | int) -> bool:
    """Pydantic names the member of a union it tried (`QuietHours`, `literal['off']`); file keys are lower case."""
    return isinstance(part, str) and (part.startswith("literal[") or part[:1].isupper() or part == "[key]")


def _without_union_tags(errors: list[ErrorDetails]) -> list[tuple[ErrorDetails, list[str | int]]]:
    """Each error with its location in the file. A value that fits no member of a union (`quiet_hours:` a
    mapping or `off`) is explained by the structured member alone: the keyword alternative is left out."""
    located = [(e, [p for p in e["loc"] if isinstance(p, str | int)]) for e in errors]
    structured = {
        tuple(loc[: next(i for i, p in enumerate(e["loc"]) if _is_union_tag(p))])
        for e, loc in located
        if any(_is_union_tag(p) and not str(p).startswith("literal[") for p in e["loc"])
    }
    out = []
    for error, loc in located:
        tags = [i for i, p in enumerate(error["loc"]) if _is_union_tag(p)]
        if tags and str(error["loc"][tags[0]]).startswith("literal[") and tuple(error["loc"][: tags[0]]) in structured:
            continue
        out.append((error, [p for p in loc if not _is_union_tag(p)]))
    return out


def _unknown_key_message(loc: Sequence[str | int]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    known = list(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    return f"unknown key {key!r} (allowed here: {', '.join(known)})"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that validates the mapping at `loc` in a campaign file."""
    model: type[BaseModel] = Campaign
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None and looks_like_locale(part):
            continue  # per-language content: each language holds the same model
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _value_message(error: ErrorDetails, loc: Sequence[str | int]) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if value is None and kind.endswith("_type"):
        return "has no value"
    messages: dict[str, Callable[[], str]] = {
        "literal_error": lambda: f"{_describe(value)} is not valid; write {ctx.get('expected', 'one of the options')}",
        "string_type": lambda: f"should be text, not {_describe(value)}",
        "int_type": lambda: f"should be a whole number, not {_describe(value)}",
        "int_parsing": lambda: f"should be a whole number, not {_describe(value)}",
        "int_from_float": lambda: f"should be a whole number, not {_describe(value)}",
        "greater_than": lambda: f"should be more than {ctx.get('gt')}",
        "list_type": lambda: f"should be a list (lines starting with `- `), not {_describe(value)}",
        "model_type": lambda: f"should be a mapping (`key: value` lines), not {_describe(value)}",
        "model_attributes_type": lambda: f"should be a mapping (`key: value` lines), not {_describe(value)}",
        "dict_type": lambda: f"should be a mapping (`key: value` lines), not {_describe(value)}",
        "too_short": lambda: "needs at least one step" if list(loc) == ["steps"] else "needs at least one entry",
        "string_too_short": lambda: "must not be empty",
        "string_too_long": lambda: f"is too long (at most {ctx.get('max_length')} characters)",
        "string_pattern_mismatch": lambda: _pattern_message(str(loc[-1]) if loc else "", value),
    }
    if kind in messages:
        return messages[kind]()
    if kind.startswith("datetime"):
        return f"{_describe(value)} is not a date and time like 2026-01-31 10:00"
    return str(error["msg"]).removeprefix("Value error, ")


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _pattern_message(field: str, value: Any) -> str:
    hints = {
        "id": "ids are lowercase letters, digits and -, starting with a letter or digit (at most 64)",
        "tag": "tags are lowercase letters, digits and -, starting with a letter or digit (at most 64)",
        "template": NAME_RULE,
        "throttle": "write a rate like 50/s, 300/m or 1000/h",
        "start": "write a time as HH:MM",
        "end": "write a time as HH:MM",
    }
    return f"{value!r} is not valid: {hints.get(field, 'wrong format')}"


def dotted(loc: Sequence[str | int]) -> str:
    """`steps[0].content.sms` for a location in the file."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
