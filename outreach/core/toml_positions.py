"""Where each key of a TOML document is written (line and column): tomllib gives values, not positions, and
settings errors are reported as PATH:LINE:COL like campaign files'."""

from __future__ import annotations

import re
import tomllib

_BARE_KEY = r"[A-Za-z0-9_-]+"
_SIMPLE_KEY = rf"(?:{_BARE_KEY}|\"(?:[^\"\\]|\\.)*\"|'[^']*')"
_DOTTED_KEY = rf"{_SIMPLE_KEY}(?:[ \t]*\.[ \t]*{_SIMPLE_KEY})*"
_HEADER_LINE = re.compile(rf"^([ \t]*\[\[?[ \t]*)({_DOTTED_KEY})[ \t]*\]")
_KEY_LINE = re.compile(rf"^([ \t]*)({_DOTTED_KEY})[ \t]*=[ \t]*")

# (line, column of the key, column of the value), all 1-based; a table's header has its name's column twice.
Position = tuple[int, int, int]


def key_positions(text: str) -> dict[tuple[str, ...], Position]:
    """Where each key (as its path of names: `("sms_help", "zh")`) is first written in a TOML document.

    tomllib gives no positions, so the text is scanned line by line: table headers, `key =` lines (dotted
    keys too), skipping the insides of multi-line strings and arrays. Keys inside inline tables are located
    at the inline table's key.
    """
    positions: dict[tuple[str, ...], Position] = {}
    table: tuple[str, ...] = ()
    state: tuple[str | None, int] = (None, 0)  # open multi-line string delimiter, array/inline-table depth
    for number, line in enumerate(text.split("\n"), 1):
        start = 0
        if state == (None, 0):
            header = _HEADER_LINE.match(line)
            if header:
                table = _split_key(header.group(2))
                col = len(header.group(1)) + 1
                for i in range(1, len(table) + 1):
                    positions.setdefault(table[:i], (number, col, col))
                continue
            key = _KEY_LINE.match(line)
            if key:
                path = table + _split_key(key.group(2))
                place = (number, len(key.group(1)) + 1, key.end() + 1)
                for i in range(len(table) + 1, len(path) + 1):
                    positions.setdefault(path[:i], place)
                start = key.end()
        state = _scan(line, start, state)
    return positions


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for part in re.findall(_SIMPLE_KEY, dotted):
        if part.startswith('"'):
            try:
                part = tomllib.loads(f"k = {part}")["k"]
            except tomllib.TOMLDecodeError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _scan(line: str, start: int, state: tuple[str | None, int]) -> tuple[str | None, int]:
    """The state after `line` from `start`: whether a multi-line string is still open, how many brackets."""
    open_string, depth = state
    i = start
    while i < len(line):
        if open_string is not None:
            end = line.find(open_string, i)
            if end < 0:
                return open_string, depth
            i, open_string = end + 3, None
            continue
        c = line[i]
        if c == "#":
            break
        if c in "\"'":
            if line.startswith(c * 3, i):
                open_string, i = c * 3, i + 3
                continue
            i += 1
            while i < len(line) and line[i] != c:
                i += 2 if c == '"' and line[i] == "\\" else 1
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return open_string, depth


def locate(
    positions: dict[tuple[str, ...], Position], keys: tuple[str, ...], at_value: bool
) -> tuple[int | None, int | None]:
    for i in range(len(keys), 0, -1):
        place = positions.get(keys[:i])
        if place is not None:
            line, key_col, value_col = place
            return line, value_col if at_value and i == len(keys) else key_col
    return None, None
