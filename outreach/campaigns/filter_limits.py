"""The checks, before they run, of Jinja's filters that can make much more than they are given (`center(10**9)`,
`'%999999999d'|format(1)`, `batch(10**9, 'x')`, a `join` with a long separator), and `tojson` written within
the bound. Every other filter makes about what it reads; the sandbox checks what any filter made afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from outreach.campaigns.template_limits import (
    MAX_RENDER_CHARACTERS,
    MAX_VALUE_SIZE,
    TemplateLimitError,
    check_printf,
    check_replace,
    measure,
    too_big,
)


def _center(value: Any, width: Any = 80) -> Any:
    if isinstance(width, int) and width > MAX_VALUE_SIZE:
        raise too_big(f"center({width})", width)
    return value


def _indent(value: Any, width: Any = 4, first: Any = False, blank: Any = False) -> Any:
    text = str(value)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    size = len(text) + (text.count("\n") + 1) * step
    if size > MAX_VALUE_SIZE:
        raise too_big(f"indent({width!r})", size)
    return value


def _format(value: Any, *args: Any, **kwargs: Any) -> Any:
    check_printf(str(value), kwargs or args)
    return value


def _join(value: Iterable[Any], d: Any = "", attribute: Any = None) -> Any:
    items = list(value)  # read once here: a generator handed on would be empty
    size = measure(items) + len(str(d)) * max(len(items) - 1, 0)
    if size > MAX_VALUE_SIZE:
        raise too_big("join", size)
    return items


def _replace(value: Any, old: Any, new: Any, count: Any = None) -> Any:
    check_replace(str(value), str(old), str(new), count, "replace")
    return value


def _wordwrap(
    value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, break_on_hyphens: Any = True
) -> Any:
    text = str(value)
    if not isinstance(width, int) or width < 1:
        return value  # textwrap refuses it itself
    lines = len(text) // width + text.count("\n") + 1
    size = len(text) + lines * len(wrapstring if isinstance(wrapstring, str) else "\n")
    if size > MAX_VALUE_SIZE:
        raise too_big(f"wordwrap({width})", size)
    if break_long_words:
        # textwrap copies the rest of a long word once for every line it breaks off
        work = sum(len(word) ** 2 for word in text.split() if len(word) > width) // width
        if work > MAX_RENDER_CHARACTERS:
            raise TemplateLimitError(f"wordwrap({width}): the text's words are too long to break into such lines")
    return value


def _batch(value: Any, linecount: Any, fill_with: Any = None) -> Any:
    if isinstance(linecount, int) and linecount > MAX_VALUE_SIZE:
        raise too_big(f"batch({linecount})", linecount)
    return value


def _slice(value: Any, slices: Any, fill_with: Any = None) -> Any:
    if isinstance(slices, int) and slices > MAX_VALUE_SIZE:
        raise too_big(f"slice({slices})", slices)
    return value


def _sum(value: Any, attribute: Any = None, start: Any = 0) -> Any:
    # Adding lists one after another copies the total every time: a template's sums are of numbers.
    if not isinstance(start, (int, float, Decimal)):
        raise TemplateLimitError("sum adds numbers: its start must be a number")
    return value


def _tojson(value: Any, indent: Any = None) -> Any:
    if isinstance(indent, int) and indent > MAX_VALUE_SIZE:
        raise too_big(f"tojson({indent})", indent)
    return value


# filter name -> its check, called with the filter's arguments; returns the value to filter
FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "wordwrap": _wordwrap,
    "batch": _batch,
    "slice": _slice,
    "sum": _sum,
    "tojson": _tojson,
}


def bounded_json_dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps for the `tojson` filter (the environment's json.dumps_function policy), stopped as soon as
    what it wrote passes MAX_VALUE_SIZE."""
    written: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(**kwargs).iterencode(value):
        size += len(chunk)
        if size > MAX_VALUE_SIZE:
            raise too_big("tojson", size)
        written.append(chunk)
    return "".join(written)
