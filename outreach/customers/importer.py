"""`customers import`: CSV or JSONL files of customers, all or nothing, in one reading.

The file is read once, in chunks: each chunk's rows are checked and, while no row so far was wrong, written
inside one transaction. Any problem stops the writing (the reading goes on, so every bad row is named), and
the transaction is rolled back: a bad file changes nothing. Memory stays flat whatever the file's size: the
ids seen so far (an id given twice is a problem) are kept in a temporary table of the transaction
(customers/imported_ids), not in memory.

An attribute that no earlier import typed gets the type its values have in common. The values of the first
chunks are written with the type guessed so far; if a later row changes the guess (a column of numbers that
turns out to hold `A12`), the transaction is rolled back and the file read once more with the types now
known, so every row gets the file's type.

Every column is an attribute, even one no row fills: it is recorded with the type declared for it (a header
`nps:number`, `--types nps=number`), else as an untyped string that its first values will type.

Shared addresses and provisional profiles that the file's addresses adopt are worked out once, at the end,
with one query each over the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.customers.import_checks import RowChecker, settle
from outreach.customers.import_rows import Columns, Position, file_rows, is_json_lines
from outreach.customers.imported_ids import ImportedIds
from outreach.customers.profile_upsert import CustomerRecord, ImportSummary, write_chunk
from outreach.customers.profiles import IMPORT_SOURCE_PREFIX, attribute_catalog, declare_attributes
from outreach.customers.provisional import adopt_provisional
from outreach.customers.shared_addresses import SHAREABLE, shared_with_file
from outreach.store.database import utcnow
from outreach.store.fields import ATTRIBUTE_NAME, ATTRIBUTE_TYPES, AttributeType
from outreach.store.schema import customers

CHUNK = 5000
# (bytes of the file read so far, its size in bytes, rows read so far)
Progress = Callable[[int, int, int], None]


def import_customers(
    engine: Engine,
    path: Path,
    settings: Settings,
    *,
    allow_invalid_contacts: bool = False,
    progress: Progress | None = None,
    column_types: Mapping[str, AttributeType] | None = None,
) -> ImportSummary:
    """Check the whole file and upsert it in one transaction; raise InputError naming every bad row.
    `column_types` types the file's new attributes (`--types`)."""
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    declared = dict(column_types or {})
    reading = _Reading(path, settings, catalog, allow_invalid_contacts, progress, declared=declared)
    summary = reading.run(engine)
    if isinstance(summary, _Retyped):
        # A later row changed a type guessed from the first ones: read again, every type known from the start.
        settled = _Reading(
            path, settings, catalog, allow_invalid_contacts, progress, types=summary.types, declared=declared
        )
        again = settled.run(engine)
        assert not isinstance(again, _Retyped)  # with every type given, nothing is guessed
        summary = again
    return summary


def parse_column_types(text: str, option: str = "--types") -> dict[str, AttributeType]:
    """`nps=number,joined=date` as {column: type}; anything else is refused (InputError at `option`)."""
    types: dict[str, AttributeType] = {}
    problems = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        column, equals, kind = (x.strip() for x in item.partition("="))
        if not equals or not ATTRIBUTE_NAME.match(column):
            problems.append(Problem(option, None, None, f"{item!r}: write COLUMN=TYPE, like nps=number"))
        elif kind not in ATTRIBUTE_TYPES:
            problems.append(Problem(option, None, None, f"{item!r}: the type is one of {', '.join(ATTRIBUTE_TYPES)}"))
        else:
            types[column] = kind
    if problems:
        raise InputError(problems)
    return types


@dataclass
class _Retyped:
    """The file's types differ from those its first chunks were written with."""

    types: dict[str, AttributeType]


@dataclass
class _Reading:
    path: Path
    settings: Settings
    catalog: dict[str, AttributeType]
    allow_invalid_contacts: bool
    progress: Progress | None
    types: dict[str, AttributeType] | None = None
    declared: dict[str, AttributeType] = field(default_factory=dict)
    # attribute -> the types its values were written with
    written_as: dict[str, set[AttributeType]] = field(default_factory=dict)
    known: bool = True  # the store held customers when the import began

    def run(self, engine: Engine) -> ImportSummary | _Retyped:
        is_json = is_json_lines(self.path)
        columns: Columns = {}
        checker = RowChecker(
            str(self.path), self.settings, self.catalog, self.allow_invalid_contacts, is_json, self.types,
            self.declared, columns,
        )  # fmt: skip
        summary = ImportSummary()
        source = f"{IMPORT_SOURCE_PREFIX}:{self.path.name}"
        position = Position(self.path) if self.path.exists() else None
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                # An import into an empty store looks up no stored customer: there is none (ids given twice
                # in the file are caught through `written`).
                self.known = conn.execute(sa.select(sa.exists().where(customers.c.id.is_not(None)))).scalar_one()
                written = ImportedIds(conn)
                chunk: list[CustomerRecord] = []
                for line, row in file_rows(self.path, checker.problems, position, columns):
                    record = checker.check(line, row)
                    if record is not None:
                        chunk.append(record)
                        summary.rows += 1
                    if len(chunk) >= CHUNK:
                        self._write(conn, chunk, checker, written, source, summary, is_json)
                        chunk = []
                        if self.progress is not None and position is not None:
                            self.progress(position.done, position.total, summary.rows)
                self._write(conn, chunk, checker, written, source, summary, is_json)
                checker.declared_problems()
                if checker.problems:
                    raise InputError(sorted(checker.problems, key=lambda p: p.line or 0))
                types = checker.final_types()
                if any(kinds != {types[name]} for name, kinds in self.written_as.items()):
                    transaction.rollback()
                    return _Retyped(types)
                summary.invalid_contacts = checker.invalid_contacts
                empty, untyped = checker.empty_columns(types)
                open_now = {k: v for k, v in {**types, **empty}.items() if k not in checker.settled}
                summary.new_attributes = declare_attributes(conn, open_now, untyped=untyped)
                summary.untyped_attributes = sorted(untyped & set(summary.new_attributes))
                _note_shared(conn, written, summary)
                written.drop()
                summary.adopted = adopt_provisional(conn, utcnow())
                transaction.commit()
            finally:
                if transaction.is_active:
                    transaction.rollback()
        return summary

    def _write(
        self,
        conn: Connection,
        chunk: list[CustomerRecord],
        checker: RowChecker,
        written: ImportedIds,
        source: str,
        summary: ImportSummary,
        is_json: bool,
    ) -> None:
        """Write a chunk of checked records, unless the file has a problem by now (then only its ids are noted,
        to find ids given twice)."""
        if not chunk:
            return
        again = written.note([(r.id, r.line) for r in chunk])
        if again:
            for record in chunk:
                if record.line in again:
                    checker.problem(record.line, f"id {record.id!r} already appears on line {again[record.line]}")
            chunk = [r for r in chunk if r.line not in again]
        if checker.problems:
            return
        guessed = checker.guessed_types()
        settle(chunk, guessed, is_json)
        for name, kind in guessed.items():
            self.written_as.setdefault(name, set()).add(kind)
        write_chunk(conn, chunk, source, summary, known=self.known)


def _note_shared(conn: Connection, written: ImportedIds, summary: ImportSummary) -> None:
    """Record the addresses of the file's customers that another customer (in the file or the store) also has:
    one query per address column once everything is written, never one per chunk (which scanned what was
    written so far each time: quadratic in the file's size)."""
    written.analyze()
    for column in SHAREABLE.values():
        for address, holders in shared_with_file(conn, column, written.table).items():
            summary.shared_addresses[(column, address)] = [c for c, _line in holders]
            summary.shared_lines.update((c, line) for c, line in holders if line is not None)
