"""`customers import`: CSV or JSONL files of customers, checked whole before anything is written.

The file is read twice: once to check every row and settle each attribute's type, and - only if nothing
is wrong - once more to upsert the rows in one transaction, in chunks, so a file of millions of rows never
sits in memory and a bad file changes nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.customers.contacts import ADDRESS_COLUMNS, check_core_fields, normalize_address
from outreach.customers.imported_ids import ImportedIds
from outreach.customers.profile_upsert import CustomerRecord, ImportSummary, write_chunk
from outreach.customers.profiles import IMPORT_SOURCE_PREFIX, attribute_catalog
from outreach.customers.provisional import adopt_provisional
from outreach.customers.shared_addresses import SHAREABLE, shared_with_file
from outreach.store.database import utcnow
from outreach.store.fields import (
    ATTRIBUTE_NAME,
    CONSENT_COLUMNS,
    CORE_FIELDS,
    CUSTOMER_ID,
    AttributeType,
    convert_json,
    convert_text,
    json_type_name,
    json_value_type,
    parse_boolean,
    parse_date,
    parse_number,
)
from outreach.store.schema import attribute_types

CHUNK = 1000
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_TYPE_ORDER: tuple[AttributeType, ...] = ("boolean", "number", "date")


class _TypeGuess:
    """Narrows an attribute's type as values are seen."""

    def __init__(self) -> None:
        self.candidates: set[AttributeType] = set(_TYPE_ORDER)
        self.json_type: AttributeType | None = None

    def see_text(self, text: str) -> None:
        if "boolean" in self.candidates and parse_boolean(text) is None:
            self.candidates.discard("boolean")
        if "number" in self.candidates and parse_number(text) is None:
            self.candidates.discard("number")
        if "date" in self.candidates and parse_date(text) is None:
            self.candidates.discard("date")

    def result(self) -> AttributeType:
        if self.json_type is not None:
            if self.json_type in ("date", "string"):
                return "date" if "date" in self.candidates else "string"
            return self.json_type
        for kind in _TYPE_ORDER:
            if kind in self.candidates:
                return kind
        return "string"


def import_customers(
    engine: Engine, path: Path, settings: Settings, *, allow_invalid_contacts: bool = False
) -> ImportSummary:
    """Check the whole file, then upsert it in one transaction; raise InputError naming every bad row."""
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    reader = _Reader(path, settings, catalog, allow_invalid_contacts)
    summary = ImportSummary()
    for _record in reader.records():
        summary.rows += 1
    if reader.problems:
        raise InputError(reader.problems)
    summary.invalid_contacts = reader.invalid_contacts
    types = reader.final_types()
    summary.new_attributes = {k: v for k, v in types.items() if k not in catalog}
    with engine.begin() as conn:
        if summary.new_attributes:
            conn.execute(attribute_types.insert(), [{"name": k, "type": v} for k, v in summary.new_attributes.items()])
        source = f"{IMPORT_SOURCE_PREFIX}:{path.name}"
        written = ImportedIds(conn)
        chunk: list[CustomerRecord] = []
        for record in _Reader(path, settings, catalog, allow_invalid_contacts, types).records():
            chunk.append(record)
            if len(chunk) >= CHUNK:
                _write(conn, chunk, source, summary, written)
                chunk = []
        if chunk:
            _write(conn, chunk, source, summary, written)
        _note_shared(conn, written, summary)
        written.drop()
        summary.adopted = adopt_provisional(conn, utcnow())
    return summary


def _write(
    conn: Connection, chunk: list[CustomerRecord], source: str, summary: ImportSummary, written: ImportedIds
) -> None:
    write_chunk(conn, chunk, source, summary)
    written.add((r.id, r.line) for r in chunk)


def _note_shared(conn: Connection, written: ImportedIds, summary: ImportSummary) -> None:
    """Record the addresses of the file's customers that another customer (in the file or the store) also has:
    one query per address column once everything is written, never one per chunk (which scanned what was
    written so far each time: quadratic in the file's size)."""
    written.analyze()
    for column in SHAREABLE.values():
        for address, holders in shared_with_file(conn, column, written.table).items():
            summary.shared_addresses[(column, address)] = [c for c, _line in holders]
            summary.shared_lines.update((c, line) for c, line in holders if line is not None)


class _Reader:
    """Parses and checks rows; with `types` given, converts attributes to them."""

    def __init__(
        self,
        path: Path,
        settings: Settings,
        catalog: dict[str, AttributeType],
        allow_invalid_contacts: bool,
        types: dict[str, AttributeType] | None = None,
    ) -> None:
        self.path = path
        self.name = str(path)
        self.settings = settings
        self.catalog = catalog
        self.allow_invalid_contacts = allow_invalid_contacts
        self.types = types
        self.guesses: dict[str, _TypeGuess] = {}
        self.problems: list[Problem] = []
        self.invalid_contacts: list[Problem] = []
        self.seen_ids: dict[str, int] = {}
        self.is_json = path.suffix.lower() in (".jsonl", ".ndjson", ".json")

    def final_types(self) -> dict[str, AttributeType]:
        out: dict[str, AttributeType] = {}
        for name, guess in self.guesses.items():
            if name in self.catalog:
                out[name] = self.catalog[name]
            elif name in self.settings.list_columns:
                out[name] = "list"
            else:
                out[name] = guess.result()
        return out

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.name, line, None, message))

    def records(self) -> Iterator[CustomerRecord]:
        if not self.path.exists():
            raise InputError.single(self.name, "no such file")
        rows = self._json_rows() if self.is_json else self._csv_rows()
        for line, row in rows:
            record = self._record(line, row)
            if record is not None:
                yield record

    def _csv_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                self.problem(1, "empty file: a header row with at least an `id` column is needed")
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                self.problem(1, f"cannot read the header: {exc}")
                return
            if not self._check_columns(header, 1):
                return
            line = reader.line_num + 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    self.problem(line, f"not UTF-8 text ({exc.reason})")
                    return
                except csv.Error as exc:
                    self.problem(line, str(exc))
                    return
                start, line = line, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    self.problem(start, f"row has {len(cells)} fields, the header has {len(header)}")
                    continue
                yield (
                    start,
                    {h.strip(): c.strip() for h, c in zip(header, cells, strict=True) if c.strip() != ""},
                )

    def _json_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with self.path.open(encoding="utf-8-sig") as handle:
            line = 0
            while True:
                line += 1
                try:
                    text = handle.readline()
                except UnicodeDecodeError as exc:
                    self.problem(line, f"not UTF-8 text ({exc.reason})")
                    return
                if not text:
                    return
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    self.problems.append(Problem(self.name, line, exc.colno, f"not JSON: {exc.msg}"))
                    continue
                if not isinstance(row, dict):
                    self.problem(line, f"expected a JSON object, got {json_type_name(row)}")
                    continue
                if not self._check_columns(list(row), line):
                    continue
                yield line, {k: v for k, v in row.items() if v is not None and v != ""}

    def _check_columns(self, names: list[str], line: int) -> bool:
        ok = True
        seen: set[str] = set()
        for raw in names:
            name = raw.strip()
            if name in seen:
                self.problem(line, f"column {name!r} appears twice")
                ok = False
            seen.add(name)
            if name in CORE_FIELDS or name in CONSENT_COLUMNS:
                continue
            if not ATTRIBUTE_NAME.match(name):
                self.problem(
                    line,
                    f"column {name!r}: attribute names are letters, digits and _, starting with a letter",
                )
                ok = False
        if "id" not in seen:
            self.problem(line, "no `id` column: every customer needs the bank's customer id")
            ok = False
        return ok

    def _record(self, line: int, row: dict[str, Any]) -> CustomerRecord | None:
        errors: list[str] = []
        raw_id = row.get("id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not raw_id:
            errors.append("missing id")
        elif not CUSTOMER_ID.match(raw_id):
            errors.append(f"id {raw_id!r}: use up to 64 letters, digits and . _ @ + -")
        elif raw_id in self.seen_ids:
            errors.append(f"id {raw_id!r} already appears on line {self.seen_ids[raw_id]}")
        else:
            self.seen_ids[raw_id] = line

        core: dict[str, str] = {}
        for name in ("name", "country", "locale", "timezone", *ADDRESS_COLUMNS):
            value = row.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                errors.append(f"{name}: expected text, got {json_type_name(value)}")
                continue
            core[name] = value.strip()
        errors.extend(check_core_fields(core))

        invalid: dict[str, str] = {}
        region = core.get("country") or self.settings.default_country
        for name in ADDRESS_COLUMNS:
            if name not in core:
                continue
            value, problem = normalize_address(name, core[name], region)
            if problem:
                invalid[name] = problem
            else:
                core[name] = value
        for problem in invalid.values():
            if self.allow_invalid_contacts:
                self.invalid_contacts.append(Problem(self.name, line, None, problem + " (kept, marked invalid)"))
            else:
                errors.append(problem)

        consent: dict[tuple[str, str], str] = {}
        given_by: dict[tuple[str, str], str] = {}
        for column, channel_purpose in CONSENT_COLUMNS.items():
            if column not in row:
                continue
            value = row[column]
            text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
            if text in _YES:
                status = "granted"
            elif text in _NO:
                status = "revoked"
            else:
                errors.append(f"{column}: {value!r} is not yes, no or empty")
                continue
            earlier = given_by.get(channel_purpose)
            if earlier is not None and consent[channel_purpose] != status:
                errors.append(f"{column} and {earlier} say different things about the same consent")
            consent[channel_purpose] = status
            given_by[channel_purpose] = column

        attributes: dict[str, Any] = {}
        for name, value in row.items():
            if name in CORE_FIELDS or name in CONSENT_COLUMNS:
                continue
            converted, error = self._attribute(name, value)
            if error:
                errors.append(f"{name}: {error}")
            else:
                attributes[name] = converted

        for error in errors:
            self.problem(line, error)
        if errors or not isinstance(raw_id, str):
            return None
        return CustomerRecord(line, raw_id, core, invalid, consent, attributes)

    def _attribute(self, name: str, value: Any) -> tuple[Any, str | None]:
        guess = self.guesses.setdefault(name, _TypeGuess())
        known = self.types.get(name) if self.types else self.catalog.get(name)
        if known is None and name in self.settings.list_columns:
            known = "list"
        if isinstance(value, str) and not self.is_json:
            if known is None:
                guess.see_text(value)
                return value, None
            return _with_hint(convert_text(value, known), known, name in self.catalog)
        if known is None:
            kind = json_value_type(value)
            if kind is None:
                return None, f"{json_type_name(value)} values are not supported as attributes"
            if kind in ("date", "string"):
                guess.see_text(value)
                kind = "string"
            if guess.json_type is None:
                guess.json_type = kind
            elif guess.json_type != kind:
                return (
                    None,
                    f"{value!r} is a {kind}, but earlier rows give this attribute {guess.json_type} values",
                )
            return value, None
        return _with_hint(convert_json(value, known), known, name in self.catalog)


def _with_hint(result: tuple[Any, str | None], kind: AttributeType, from_catalog: bool) -> tuple[Any, str | None]:
    value, error = result
    if error and from_catalog:
        error += f" (earlier imports made this a {kind} attribute)"
    return value, error
