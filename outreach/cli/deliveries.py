"""`outreach deliveries ...`: the ledger rows themselves, exported for regulators and BI tools.

stdout carries only data (or nothing, with `--output`); progress and the closing summary go to stderr.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from outreach.cli.common import err_console, reports_errors, settings, store
from outreach.core.errors import InputError
from outreach.reports.export import FORMATS, WRITERS, export_rows, has_rows

app = typer.Typer(help="The delivery ledger: export a campaign's rows.", no_args_is_help=True, rich_markup_mode=None)


@app.command()
@reports_errors
def export(
    campaign: Annotated[str, typer.Option("--campaign", help="The campaign whose rows to export.")],
    occurrence: Annotated[str | None, typer.Option("--occurrence", help="Only this occurrence.")] = None,
    format_: Annotated[str, typer.Option("--format", help="csv (with a header) or jsonl.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", help="Write here instead of stdout.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="CSV cells exactly as stored, for loaders (not for spreadsheets).")
    ] = False,
) -> None:
    """Stream every ledger row of a campaign with its content and status history (`kind@time` entries).

    In CSV, a text cell that a spreadsheet would run as a formula (it begins with = + - @, a tab or a carriage
    return and is not a number) is written with a ' in front; --raw writes every cell as stored."""
    if format_ not in FORMATS:
        raise InputError.single("--format", f"{format_!r} is not a format: use {' or '.join(FORMATS)}")
    engine = store(settings())
    with engine.connect() as conn:
        found = has_rows(conn, campaign, occurrence)
    if not found:
        if occurrence is None:
            raise InputError.single("--campaign", f"campaign {campaign!r} has no ledger rows")
        raise InputError.single(
            "--occurrence", f"campaign {campaign!r} has no ledger rows in occurrence {occurrence!r}"
        )
    if output is not None and not output.parent.is_dir():
        raise InputError.single("--output", f"{str(output)!r}: no such folder {str(output.parent)!r}")
    rows = export_rows(engine, campaign, occurrence)
    with err_console.status(f"exporting {campaign} ...") as status:
        counted = _counting(rows, lambda n: status.update(f"exporting {campaign}: {n} rows"))
        count = _to_stdout(format_, counted, raw) if output is None else _to_file(format_, counted, output, raw)
    where = "stdout" if output is None else str(output)
    print(f"exported {count} rows of {campaign} as {format_} to {where}", file=sys.stderr)


def _counting(
    rows: Iterator[dict[str, Any]], tick: Callable[[int], None], every: int = 1000
) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, start=1):
        if n % every == 0:
            tick(n)
        yield row


def _to_stdout(format_: str, rows: Iterator[dict[str, Any]], raw: bool) -> int:
    """UTF-8 on stdout whatever the locale says; newline="" so that CSV writes its own line ends."""
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        count = WRITERS[format_](rows, out, raw)
        out.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error, and nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    out.detach()
    return count


def _to_file(format_: str, rows: Iterator[dict[str, Any]], output: Path, raw: bool) -> int:
    """Written beside the target and renamed when complete, so a reader never sees half an export."""
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = WRITERS[format_](rows, out, raw)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
