"""Checking the rows of an import file: one row into a `CustomerRecord`, or the problems that stop it.

Core fields are checked and normalised (phones to E.164, emails, country, locale, zone), consent columns read
as yes/no, attributes converted to their type. An attribute whose type no earlier import settled has it
inferred from the whole file: its values stay as written (`CustomerRecord.attributes` holds them raw) while
`TypeGuess` narrows what they can all be, and `settle` converts a chunk of records to the types guessed so
far. The importer writes with those guesses and checks at the end that the file did not change them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from outreach.core.errors import Problem
from outreach.core.settings import Settings
from outreach.customers.contacts import ADDRESS_COLUMNS, check_core_fields, normalize_address
from outreach.customers.profile_upsert import CustomerRecord
from outreach.store.fields import (
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

_VALUES_KEPT = 65_536
_YES = frozenset({"yes", "y", "true", "1"})
_NO = frozenset({"no", "n", "false", "0"})
_TYPE_ORDER: tuple[AttributeType, ...] = ("boolean", "number", "date")
_NOT_ATTRIBUTES = frozenset(CORE_FIELDS) | frozenset(CONSENT_COLUMNS)
_TEXT_FIELDS = ("name", "country", "locale", "timezone", *ADDRESS_COLUMNS)
_CONSENTS = tuple(CONSENT_COLUMNS.items())


class TypeGuess:
    """Narrows an attribute's type as values are seen."""

    def __init__(self) -> None:
        self.candidates: set[AttributeType] = set(_TYPE_ORDER)
        self.json_type: AttributeType | None = None

    def see_text(self, text: str) -> None:
        candidates = self.candidates
        if not candidates:
            return
        if "boolean" in candidates and parse_boolean(text) is None:
            candidates.discard("boolean")
        if "number" in candidates and parse_number(text) is None:
            candidates.discard("number")
        if "date" in candidates and parse_date(text) is None:
            candidates.discard("date")

    def result(self) -> AttributeType:
        if self.json_type is not None:
            if self.json_type in ("date", "string"):
                return "date" if "date" in self.candidates else "string"
            return self.json_type
        for kind in _TYPE_ORDER:
            if kind in self.candidates:
                return kind
        return "string"


class RowChecker:
    """Checks rows one at a time, remembering what the whole file needs: each attribute's type guess, the
        problems and the contacts kept invalid. (An id given twice is found by the importer, which keeps the ids
        in the store rather than in memory.)

        With `types` given (every attribute's type settled), attributes are converted to them as they come. Types
    declared for the file (`declared`: `--types`; `columns`: the header's `nps:number`, filled as the file is
    read) are used for attributes the catalog has not settled; an attribute the catalog knows only from an
    empty column is typed like a new one."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        catalog: dict[str, AttributeType],
        allow_invalid_contacts: bool,
        is_json: bool,
        types: dict[str, AttributeType] | None = None,
        declared: Mapping[str, AttributeType] | None = None,
        columns: Mapping[str, AttributeType | None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.catalog = catalog
        untyped: frozenset[str] = getattr(catalog, "untyped", frozenset())
        # the types earlier imports (or survey answers) settled
        self.settled = {k: v for k, v in catalog.items() if k not in untyped}
        self.allow_invalid_contacts = allow_invalid_contacts
        self.is_json = is_json
        known = dict(types) if types else dict(self.settled)
        for column in settings.list_columns:
            known.setdefault(column, "list")
        self.given = dict(declared or {})
        self.declared = {k: v for k, v in self.given.items() if k not in self.settled}
        for column, kind in self.declared.items():
            known.setdefault(column, kind)
        self.columns = columns if columns is not None else {}
        self.known: dict[str, AttributeType] = known
        # every attribute seen, in the order first seen; a guess for those of no known type
        self.guesses: dict[str, TypeGuess | None] = {}
        self.problems: list[Problem] = []
        self.invalid_contacts: list[Problem] = []

    def final_types(self) -> dict[str, AttributeType]:
        """Every attribute of the file and its type: the catalog's, `list` for list columns, else inferred."""
        out: dict[str, AttributeType] = {}
        for name, guess in self.guesses.items():
            if name in self.settled:
                out[name] = self.settled[name]
            elif name in self.settings.list_columns:
                out[name] = "list"
            elif guess is not None:
                out[name] = guess.result()
            else:
                out[name] = self.known[name]
        return out

    def guessed_types(self) -> dict[str, AttributeType]:
        """The attributes still being inferred and the type their values so far have in common."""
        return {name: guess.result() for name, guess in self.guesses.items() if guess is not None}

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.name, line, None, message))

    def check(self, line: int, row: dict[str, Any]) -> CustomerRecord | None:
        """The row as a record, or None (its problems added to `problems`)."""
        errors: list[str] = []
        raw_id = row.get("id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not raw_id:
            errors.append("missing id")
        elif not CUSTOMER_ID.match(raw_id):
            errors.append(f"id {raw_id!r}: use up to 64 letters, digits and . _ @ + -")

        core: dict[str, str] = {}
        for name in _TEXT_FIELDS:
            value = row.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                errors.append(f"{name}: expected text, got {json_type_name(value)}")
                continue
            core[name] = value.strip()
        if core:
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
        for column, channel_purpose in _CONSENTS:
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
            earlier_column = given_by.get(channel_purpose)
            if earlier_column is not None and consent[channel_purpose] != status:
                errors.append(f"{column} and {earlier_column} say different things about the same consent")
            consent[channel_purpose] = status
            given_by[channel_purpose] = column

        attributes: dict[str, Any] = {}
        for name, value in row.items():
            if name in _NOT_ATTRIBUTES:
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
        known = self.known.get(name)
        hint = self.columns.get(name)
        if known is None and hint is not None and name not in self.settled:
            known = self.known[name] = hint  # the header's `name:type`
        if known is not None:
            if name not in self.guesses:
                self.guesses[name] = None
            if isinstance(value, str) and not self.is_json:
                return _with_hint(text_as(value, known), known, name in self.settled)
            return _with_hint(convert_json(value, known), known, name in self.settled)
        guess = self.guesses.get(name)
        if guess is None:
            guess = self.guesses[name] = TypeGuess()
        if isinstance(value, str) and not self.is_json:
            guess.see_text(value)
            return value, None
        kind = json_value_type(value)
        if kind is None:
            return None, f"{json_type_name(value)} values are not supported as attributes"
        if kind in ("date", "string"):
            guess.see_text(value)
            kind = "string"
        if guess.json_type is None:
            guess.json_type = kind
        elif guess.json_type != kind:
            return None, f"{value!r} is a {kind}, but earlier rows give this attribute {guess.json_type} values"
        return value, None

    def declared_problems(self, option: str = "--types") -> None:
        """Types declared for the file that contradict each other, the catalog, or the file's columns."""
        for column, hint in self.columns.items():
            settled = self.settled.get(column)
            if hint is not None and settled is not None and settled != hint:
                self.problem(1, f"column '{column}:{hint}': earlier imports made {column} a {settled} attribute")
        for column, kind in self.given.items():
            hint, settled = self.columns.get(column), self.settled.get(column)
            if column not in self.columns:
                message = f"{column}={kind}: {self.name} has no column {column}"
            elif settled is not None and settled != kind:
                message = f"{column}={kind}, but earlier imports made {column} a {settled} attribute"
            elif hint is not None and hint != kind:
                message = f"{column}={kind}, but the header says {column}:{hint}"
            else:
                continue
            self.problems.append(Problem(option, None, None, message))

    def empty_columns(self, types: Mapping[str, AttributeType]) -> tuple[dict[str, AttributeType], set[str]]:
        """The attribute columns no row gave a value, as new attributes: typed as declared, else recorded as
        untyped strings (their first values will type them). Returns (types, the untyped among them)."""
        found: dict[str, AttributeType] = {}
        untyped: set[str] = set()
        for column, hint in self.columns.items():
            if column in _NOT_ATTRIBUTES or column in types or column in self.settled:
                continue
            kind = self.declared.get(column) or hint
            if kind is None and column in self.settings.list_columns:
                kind = "list"
            if kind is None:
                untyped.add(column)
            found[column] = kind or "string"
        return found, untyped


def settle(records: Iterable[CustomerRecord], types: dict[str, AttributeType], is_json: bool) -> None:
    """Convert the records' inferred attributes (still as written) to `types`, in place. Every value fits
    the type guessed from it, so nothing fails here."""
    if not types:
        return
    convert = convert_json if is_json else text_as
    for record in records:
        attributes = record.attributes
        for name, value in attributes.items():
            kind = types.get(name)
            if kind is None or kind == "string":
                continue
            converted, error = convert(value, kind)
            if error is not None:
                raise RuntimeError(f"{name}: {error}, after its values were all found to be {kind}")
            attributes[name] = converted


@functools.lru_cache(maxsize=_VALUES_KEPT)
def _scalar_from_text(text: str, kind: AttributeType) -> tuple[Any, str | None]:
    return convert_text(text, kind)


def text_as(text: str, kind: AttributeType) -> tuple[Any, str | None]:
    """`convert_text`, remembering the results for scalar kinds: most columns repeat a few values (a city, a
    status, a date, an age), each converted once. Lists are made anew each time: a list is mutable."""
    if kind == "list":
        return convert_text(text, kind)
    return _scalar_from_text(text, kind)


def _with_hint(result: tuple[Any, str | None], kind: AttributeType, from_catalog: bool) -> tuple[Any, str | None]:
    value, error = result
    if error and from_catalog:
        error += f" (earlier imports made this a {kind} attribute)"
    return value, error
