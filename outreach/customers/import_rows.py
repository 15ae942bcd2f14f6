"""The rows of an import file: a CSV with a header row, or JSON lines (`.jsonl`, `.ndjson`, `.json`).

Each row comes with its line number, as a dict of its non-empty values (CSV cells stripped). What cannot
be read (a bad header, a row of the wrong width, a line that is not a JSON object) is added to `problems`
and skipped, so one reading finds every problem. Every column seen, empty or not, is noted in `columns`
with the type a CSV header may give it (`nps:number`): a column with no value is still an attribute.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from outreach.core.errors import InputError, Problem
from outreach.store.fields import (
    ATTRIBUTE_NAME,
    ATTRIBUTE_TYPES,
    CONSENT_COLUMNS,
    CORE_FIELDS,
    AttributeType,
    json_type_name,
)

_NAMED_COLUMNS = frozenset(CORE_FIELDS) | frozenset(CONSENT_COLUMNS)


def is_json_lines(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


class Position:
    """How far a reading has got into its file, in bytes: for a progress bar."""

    def __init__(self, path: Path) -> None:
        self.total = path.stat().st_size
        self._raw: io.BufferedReader | None = None

    @property
    def done(self) -> int:
        raw = self._raw
        if raw is None:
            return 0
        return self.total if raw.closed else raw.tell()

    def open(self, path: Path, newline: str | None) -> io.TextIOWrapper:
        self._raw = path.open("rb")
        return io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline=newline)


# column -> the type its CSV header gives it (`nps:number`), or None
Columns = dict[str, AttributeType | None]


def file_rows(
    path: Path, problems: list[Problem], position: Position | None = None, columns: Columns | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) for every readable row of the file at `path`; `position` follows the reading, `columns`
    gets every column (a CSV's header, before its first row; a JSON line's keys as they come)."""
    if not path.exists():
        raise InputError.single(str(path), "no such file")
    position = position or Position(path)
    seen: Columns = {} if columns is None else columns
    if is_json_lines(path):
        return _json_rows(path, problems, position, seen)
    return _csv_rows(path, problems, position, seen)


def _csv_rows(
    path: Path, problems: list[Problem], position: Position, columns: Columns
) -> Iterator[tuple[int, dict[str, Any]]]:
    name = str(path)
    with position.open(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            problems.append(Problem(name, 1, None, "empty file: a header row with at least an `id` column is needed"))
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(Problem(name, 1, None, f"cannot read the header: {exc}"))
            return
        names, hints = _header_hints(name, header, problems)
        if not _check_columns(name, names, 1, problems):
            return
        columns.update(zip(names, hints, strict=True))
        width = len(header)
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                problems.append(Problem(name, line, None, f"not UTF-8 text ({exc.reason})"))
                return
            except csv.Error as exc:
                problems.append(Problem(name, line, None, str(exc)))
                return
            start, line = line, reader.line_num + 1
            if len(cells) != width:
                if any(c.strip() for c in cells):
                    problems.append(Problem(name, start, None, f"row has {len(cells)} fields, the header has {width}"))
                continue
            row = {h: s for h, c in zip(names, cells, strict=True) if (s := c.strip())}
            if row:
                yield start, row


def _json_rows(
    path: Path, problems: list[Problem], position: Position, columns: Columns
) -> Iterator[tuple[int, dict[str, Any]]]:
    name = str(path)
    with position.open(path, newline=None) as handle:
        line = 0
        while True:
            line += 1
            try:
                text = handle.readline()
            except UnicodeDecodeError as exc:
                problems.append(Problem(name, line, None, f"not UTF-8 text ({exc.reason})"))
                return
            if not text:
                return
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(Problem(name, line, exc.colno, f"not JSON: {exc.msg}"))
                continue
            if not isinstance(row, dict):
                problems.append(Problem(name, line, None, f"expected a JSON object, got {json_type_name(row)}"))
                continue
            if not _check_columns(name, list(row), line, problems):
                continue
            for key in row:
                columns.setdefault(key, None)
            yield line, {k: v for k, v in row.items() if v is not None and v != ""}


def _header_hints(
    name: str, header: list[str], problems: list[Problem]
) -> tuple[list[str], list[AttributeType | None]]:
    """The header's column names, and the type each one's `:type` suffix gives it (None without one, or with
    a suffix that is a problem)."""
    names: list[str] = []
    hints: list[AttributeType | None] = []
    for raw in header:
        column, colon, hint = raw.strip().partition(":")
        column, hint = column.strip(), hint.strip().lower()
        names.append(column)
        hints.append(hint if colon and hint in ATTRIBUTE_TYPES and column not in _NAMED_COLUMNS else None)
        if not colon or hints[-1] is not None:
            continue
        if column in _NAMED_COLUMNS:
            problems.append(
                Problem(name, 1, None, f"column {raw.strip()!r}: {column} has its own type; drop ':{hint}'")
            )
        else:
            problems.append(
                Problem(
                    name, 1, None, f"column {raw.strip()!r}: the type after ':' is one of {', '.join(ATTRIBUTE_TYPES)}"
                )
            )
    return names, hints


def _check_columns(name: str, columns: list[str], line: int, problems: list[Problem]) -> bool:
    ok = True
    seen: set[str] = set()
    for raw in columns:
        column = raw.strip()
        if column in seen:
            problems.append(Problem(name, line, None, f"column {column!r} appears twice"))
            ok = False
        seen.add(column)
        if column in _NAMED_COLUMNS:
            continue
        if not ATTRIBUTE_NAME.match(column):
            problems.append(
                Problem(
                    name,
                    line,
                    None,
                    f"column {column!r}: attribute names are letters, digits and _, starting with a letter",
                )
            )
            ok = False
    if "id" not in seen:
        problems.append(Problem(name, line, None, "no `id` column: every customer needs the bank's customer id"))
        ok = False
    return ok
