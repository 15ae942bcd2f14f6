"""What every command shares: settings, the store, error reporting and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from outreach.core.errors import InputError, OutreachError
from outreach.core.settings import Settings, load_settings, mask_secrets
from outreach.store.database import open_store
from outreach.store.outage import outage_reason, store_name, store_unreachable

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)


def print_table(table: Table, on: Console | None = None) -> None:
    """Print a table whose cells wrap, and split a long word, rather than end in `…`: at 80 columns nothing
    an operator needs (an event name, an error code) is cut off."""
    for column in table.columns:
        column.overflow = "fold"
    (on or console).print(table)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input: every problem on stderr as PATH:LINE:COL: message, exit 2. Runtime failure: exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            for problem in exc.problems:
                print(str(problem), file=sys.stderr)
            raise typer.Exit(2) from None
        except OutreachError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except Exception as exc:
            if not store_unreachable(exc):
                raise
            # The store went away mid-command: one line, not the driver's traceback with its statement.
            print(f"error: {store_went_away(exc)}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def store_went_away(exc: BaseException) -> str:
    """`the store postgresql://app:***@db/outreach is out of reach: server closed the connection ...`"""
    try:
        cfg = load_settings()
    except InputError:
        return f"the store is out of reach: {outage_reason(exc)}"
    return f"the store {store_name(cfg.database_url)} is out of reach: {mask_secrets(outage_reason(exc), cfg)}"


def settings() -> Settings:
    return load_settings()


def store(cfg: Settings) -> Engine:
    try:
        return open_store(cfg.database_url)
    except Exception as exc:  # a store we cannot open is a runtime failure, said without secrets, on one line
        reason = outage_reason(exc) if store_unreachable(exc) else str(exc)
        raise OutreachError(
            f"cannot open the store {store_name(cfg.database_url)}: {mask_secrets(reason, cfg)}"
        ) from None


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    """One JSON document on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_default) + "\n")


def existing_catalog(cfg: Settings) -> dict[str, Any] | None:
    """Known attribute types when a store already exists; None (names unchecked) when there is none yet."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from outreach.customers.profiles import attribute_catalog
    from outreach.store.database import normalize_url

    url = make_url(normalize_url(cfg.database_url))
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        return None
    try:
        engine = open_store(cfg.database_url)
    except Exception:
        return None
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    engine.dispose()
    return catalog
