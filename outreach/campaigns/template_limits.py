"""The bounds on what a template may compute and build, and the checks that hold values and operations to them.

Jinja's sandbox keeps a template away from Python's internals but not from arithmetic: `{{ 9**(9**9) }}`
would run for hours, `{{ 'x' * 10**9 }}` would take a gigabyte. Every operation that can make something much
bigger than what it was given (`**`, `*`, `+`, `%`, formats and widths, the filters and methods that
repeat) is checked here before it runs, and what it made after; one message's rendering also has a budget of
steps and characters (`RenderBudget`), so loops and macros cannot multiply their way past the bounds.
"""

from __future__ import annotations

import operator
import re
import string
from collections import Counter
from collections.abc import Callable, ItemsView, KeysView, Mapping, ValuesView
from decimal import Decimal
from typing import Any

from jinja2.exceptions import SecurityError

# The largest number (in absolute value) a template may compute: far past any amount, small enough to print.
MAX_NUMBER = 10**100
# The largest exponent of `**`.
MAX_EXPONENT = 100
# The size of any value a template builds: characters of a text, or items of a list or mapping counted
# through the values it holds (a list holding the same text twice counts it twice, as printing it would).
MAX_VALUE_SIZE = 100_000
# What rendering one message may do: template nodes run (each loop iteration and macro call costs the size
# of its body, each call CALL_STEPS more, each filter the size of its input); a fraction of a second ...
MAX_RENDER_STEPS = 200_000
CALL_STEPS = 10  # a call through the sandbox costs about what ten plain nodes do
# ... and characters built along the way, the message's own included.
MAX_RENDER_CHARACTERS = 10_000_000

# The operators a template's arithmetic goes through (jinja2's intercepted_binops): the others (`-`, `/`,
# `//`) cannot make a result much bigger than their operands, nor can unary `-` and `+` (so no
# intercepted_unops).
INTERCEPTED_BINOPS = frozenset({"+", "*", "**", "%"})
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "*": operator.mul,
    "**": operator.pow,
    "%": operator.mod,
}
_SEQUENCES = (str, bytes, list, tuple)
_NUMBER_BITS = MAX_NUMBER.bit_length()


class TemplateLimitError(SecurityError):
    """A template went past one of the bounds above; the message names it."""


def _count(n: int) -> str:
    return f"{n:,}"


def too_big(what: str, size: int) -> TemplateLimitError:
    return TemplateLimitError(
        f"{what} would make {_count(size)} characters or items; a template builds values of at most "
        f"{_count(MAX_VALUE_SIZE)}"
    )


class RenderBudget:
    """What one message's rendering has left to spend; shared by everything its template runs."""

    __slots__ = ("characters", "steps")

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.characters = MAX_RENDER_CHARACTERS

    def spend_steps(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise TemplateLimitError(
                f"the template ran more than {_count(MAX_RENDER_STEPS)} steps for one message "
                "(loops, macro calls and filters)"
            )

    def spend_characters(self, characters: int) -> None:
        self.characters -= characters
        if self.characters < 0:
            raise self.overspent()

    def overspent(self) -> TemplateLimitError:
        return TemplateLimitError(
            f"the template built more than {_count(MAX_RENDER_CHARACTERS)} characters for one message"
        )


def measure(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """The size of `value` (see MAX_VALUE_SIZE); counting stops soon after `limit`, so a huge value costs
    no more than a small one. A number counts its digits, anything else (a date, a macro) one."""
    size = 0
    pending = [value]
    while pending and size <= limit:
        item = pending.pop()
        kind = type(item)
        if kind is str:  # the usual types first, by identity: isinstance on the ABCs below is slow
            size += len(item)
        elif kind is list or kind is tuple:
            size += 1 + len(item)
            if size <= limit:
                pending.extend(item)
        elif kind is dict:
            size += 1 + len(item)
            if size <= limit:
                pending.extend(item.keys())
                pending.extend(item.values())
        else:
            size += _measure_other(item, pending)
    return size


def _measure_other(item: Any, pending: list[Any]) -> int:
    """The size of `item` alone, anything it holds added to `pending`."""
    if isinstance(item, (str, bytes, bytearray)):
        return len(item)
    if isinstance(item, bool) or item is None:
        return 1
    if isinstance(item, int):
        return item.bit_length() // 3 + 1
    if isinstance(item, Decimal):
        return _decimal_length(item)
    if isinstance(item, Mapping):
        pending.extend(item.keys())
        pending.extend(item.values())
        return 1 + len(item)
    if isinstance(item, (list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
        pending.extend(item)
        return 1 + len(item)
    return 1


def _decimal_length(value: Decimal) -> int:
    """About the characters `format(value, 'f')` writes: its digits and the zeros its exponent adds."""
    if not value.is_finite():
        return 3
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return len(digits) + abs(exponent) + 1


def check_value(value: Any, budget: RenderBudget | None, what: str = "the template") -> Any:
    """`value` if it is within the bounds (its size charged to `budget`), else TemplateLimitError."""
    if isinstance(value, str):  # by far the most common, and every output: as little work as can be
        size = len(value)
        if budget is not None:
            budget.characters -= size
            if budget.characters < 0:
                raise budget.overspent()
        if size > MAX_VALUE_SIZE:
            raise too_big(what, size)
        return value
    if _is_number(value):
        if _beyond(value, MAX_NUMBER):
            raise TemplateLimitError(f"{what} would make a number past 10**100, the largest a template may use")
        return value
    size = measure(value)
    if budget is not None:
        budget.spend_characters(size)
    if size > MAX_VALUE_SIZE:
        raise too_big(what, size)
    return value


def bounded_binop(op: str, left: Any, right: Any, budget: RenderBudget | None) -> Any:
    """`left op right` for the INTERCEPTED_BINOPS, refused before it runs when its result would be too big."""
    what = f"{_short(left)} {op} {_short(right)}"
    if op == "**":
        _check_power(left, right, what)
    elif op == "*":
        _check_product(left, right, what)
    elif op == "%" and isinstance(left, str):
        check_printf(left, right)
    return check_value(_OPERATORS[op](left, right), budget, what)


def _short(value: Any) -> str:
    """`value` as a message names it: a long text by its start."""
    if isinstance(value, str) and len(value) > 16:
        quoted = repr(value[:12])
        return quoted[:-1] + "..." + quoted[-1]
    text = repr(value) if isinstance(value, (str, int, float, Decimal)) else type(value).__name__
    return text if len(text) <= 20 else text[:17] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _beyond(number: Any, bound: int) -> bool:
    """abs(number) > bound, for NaN too (which Decimal refuses to compare)."""
    if isinstance(number, Decimal) and number.is_nan():
        return False
    return bool(abs(number) > bound)


def _check_power(base: Any, exponent: Any, what: str) -> None:
    if not (_is_number(base) and _is_number(exponent)):
        return
    if _beyond(exponent, MAX_EXPONENT):
        raise TemplateLimitError(f"{what}: an exponent in a template is at most {MAX_EXPONENT}")
    # certainly past the bound, without working it out (under that, the result is small enough to check)
    if isinstance(base, int) and isinstance(exponent, int) and (base.bit_length() - 1) * exponent > _NUMBER_BITS:
        raise TemplateLimitError(f"{what} would make a number past 10**100, the largest a template may use")


def _check_product(left: Any, right: Any, what: str) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() - 2 > _NUMBER_BITS:  # certainly past it
            raise TemplateLimitError(f"{what} would make a number past 10**100, the largest a template may use")
        return
    times, sequence = (right, left) if isinstance(left, _SEQUENCES) else (left, right)
    if isinstance(sequence, _SEQUENCES) and isinstance(times, int) and times > 0:
        size = measure(sequence)
        if size * times > MAX_VALUE_SIZE:
            raise too_big(what, size * times)


# printf-style conversions (`%5d`, `%-10s`, `%.2f`, `%(name)s`): their widths and precisions
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def check_printf(fmt: str, args: Any) -> None:
    """`fmt % args` (the `%` operator, the `format` filter): refused when its widths would make too much."""
    size = len(fmt) + measure(args)
    for match in _PRINTF.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise TemplateLimitError(f"format {_short(fmt)}: write widths as numbers in the format, not *")
            size += _width(number or "0", fmt)
    if size > MAX_VALUE_SIZE:
        raise too_big(f"format {_short(fmt)}", size)


def _width(number: str, fmt: str) -> int:
    if len(number) > 12:  # int() of a long run of digits is slow itself
        raise TemplateLimitError(
            f"format {_short(fmt)}: a width of {len(number)} digits is past {_count(MAX_VALUE_SIZE)}, the most "
            "text a template builds"
        )
    return int(number)


def check_str_format(fmt: str, args: Any, kwargs: Any) -> None:
    """`fmt.format(...)`: refused when its specs' widths and precisions would make too much."""
    size = len(fmt) + measure(args) + measure(kwargs)
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the call itself fails the same way, for this customer
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimitError(f"format {_short(fmt)}: write widths as numbers in the format, not {{fields}}")
        size += sum(_width(number, fmt) for number in _DIGITS.findall(spec))
    if size > MAX_VALUE_SIZE:
        raise too_big(f"format {_short(fmt)}", size)


def check_method_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A template's call of a method that can repeat text (`'x'.ljust(10**9)`, `.replace`, `.join`, `.format`),
    refused before it runs when the result would be too big. Returns the arguments to call it with (an
    iterable given to `join` is read once, here)."""
    target = getattr(method, "__wrapped__", method)  # the sandbox wraps str.format in its own formatter
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    what = f"{_short(owner)}.{name}()"
    if isinstance(owner, int) and not isinstance(owner, bool) and name == "to_bytes":
        length = _argument(args, kwargs, 0, "length", 1)
        if isinstance(length, int) and length > MAX_VALUE_SIZE:
            raise too_big(what, length)
    if not isinstance(owner, (str, bytes)):
        return args
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _argument(args, kwargs, 0, "width", 0)
        if isinstance(width, int) and width > MAX_VALUE_SIZE:
            raise too_big(what, width)
    elif name == "expandtabs":
        size = _argument(args, kwargs, 0, "tabsize", 8)
        tab = "\t" if isinstance(owner, str) else b"\t"
        if isinstance(size, int) and len(owner) + owner.count(tab) * size > MAX_VALUE_SIZE:  # type: ignore[arg-type]
            raise too_big(what, len(owner) + owner.count(tab) * size)  # type: ignore[arg-type]
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        check_replace(owner, args[0], args[1], count, what)
    elif name == "join" and args:
        items = list(args[0])
        size = sum(measure(item) for item in items) + len(owner) * max(len(items) - 1, 0)
        if size > MAX_VALUE_SIZE:
            raise too_big(what, size)
        return (items, *args[1:])
    elif name in ("format", "format_map") and isinstance(owner, str):
        check_str_format(owner, args, kwargs)
    elif name == "translate" and isinstance(owner, str) and args and isinstance(args[0], Mapping):
        table = args[0]
        size = sum(n * _mapped_length(table.get(ord(c), c)) for c, n in Counter(owner).items())
        if size > MAX_VALUE_SIZE:
            raise too_big(what, size)
    return args


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _mapped_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 1


def check_replace(text: Any, old: Any, new: Any, count: Any, what: str) -> None:
    """`text.replace(old, new, count)`, refused when the copies of `new` would make too much."""
    if not (isinstance(text, (str, bytes)) and type(old) is type(new) and isinstance(old, (str, bytes))):
        return
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    size = len(text) + found * (len(new) - len(old))
    if size > MAX_VALUE_SIZE:
        raise too_big(what, size)
