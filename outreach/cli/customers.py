"""`outreach customers ...`: import profiles and look at one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from outreach.cli.common import console, err_console, print_json, print_table, reports_errors, settings, store
from outreach.core.errors import InputError
from outreach.customers import profiles
from outreach.customers.importer import import_customers, parse_column_types
from outreach.customers.profile_upsert import ImportSummary
from outreach.store.rows import ConsentRow, CustomerRow, TimelineEvent

app = typer.Typer(help="Customer profiles: import them, look at one.", no_args_is_help=True, rich_markup_mode=None)


@app.command("import")
@reports_errors
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSONL (one object per line).")],
    allow_invalid_contacts: Annotated[
        bool,
        typer.Option(help="Keep phones and emails that fail validation, marked invalid (never sent to)."),
    ] = False,
    types: Annotated[
        str | None,
        typer.Option(
            "--types",
            help="Types of new attribute columns, like nps=number,joined=date (number, boolean, date, string, "
            "list); a CSV header may say the same as nps:number. Without one, a column is typed by its values, "
            "and a column with none is a string until its first values type it.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as one JSON document on stdout.")] = False,
) -> None:
    """Upsert customers by id. A file with any bad row imports nothing and names every bad row.

    Addresses that more than one customer has (a shared mailbox, a number imported twice) are imported and
    reported: service campaigns do not send to them unless told to (see `shared_address` in campaigns)."""
    cfg = settings()
    column_types = parse_column_types(types) if types is not None else None
    engine = store(cfg)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:,} rows checked"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # a script reading stderr gets the errors alone
    ) as bar:
        task = bar.add_task(f"importing {file}", total=None, rows=0)

        def advance(done: int, total: int, rows: int) -> None:
            bar.update(task, completed=done, total=total, rows=rows)

        summary = import_customers(
            engine, file, cfg, allow_invalid_contacts=allow_invalid_contacts, progress=advance,
            column_types=column_types,
        )  # fmt: skip
    if as_json:
        print_json(_summary_json(summary))
        return
    for problem in summary.invalid_contacts:
        console.print(f"[yellow]warning[/]: {problem}", highlight=False)
    console.print(
        f"{summary.rows} rows: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged; "
        f"{summary.consents_changed} consents changed",
        highlight=False,
    )
    if summary.consents_kept_revoked:
        console.print(
            f"{summary.consents_kept_revoked} consent grants not applied: those customers opted out themselves",
            highlight=False,
        )
    if summary.new_attributes:
        listed = ", ".join(
            f"{k} ({v}, no values yet)" if k in summary.untyped_attributes else f"{k} ({v})"
            for k, v in sorted(summary.new_attributes.items())
        )
        console.print(f"new attributes: {listed}", highlight=False)
    for provisional, customer in summary.adopted:
        console.print(f"{provisional} (wrote to us before import) is now {customer}", highlight=False)
    _print_shared(file, summary)


SHARED_SHOWN = 20


def _print_shared(file: Path, summary: ImportSummary) -> None:
    shared = sorted(summary.shared_addresses.items())
    for (column, address), holders in shared[:SHARED_SHOWN]:
        lines = sorted(summary.shared_lines[c] for c in holders if c in summary.shared_lines)
        where = f"{file}:{lines[0]}" if lines else str(file)
        in_file = f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""
        console.print(
            f"[yellow]warning[/]: {where}: {column} {address} is shared by {', '.join(holders)}{in_file}",
            highlight=False,
        )
    if len(shared) > SHARED_SHOWN:
        console.print(f"... and {len(shared) - SHARED_SHOWN} more shared addresses (--json lists them all)")
    if shared:
        counts = ", ".join(f"{n} {column}" for column, n in sorted(summary.shared_counts().items()))
        console.print(
            f"shared addresses: {counts}; service campaigns will not send to them (shared_address: suppress)",
            highlight=False,
        )


def _summary_json(summary: ImportSummary) -> dict[str, Any]:
    return {
        "rows": summary.rows,
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "consents_changed": summary.consents_changed,
        "consents_kept_revoked": summary.consents_kept_revoked,
        "new_attributes": summary.new_attributes,
        "untyped_attributes": summary.untyped_attributes,
        "invalid_contacts": [str(p) for p in summary.invalid_contacts],
        "adopted": [{"provisional": p, "customer": c} for p, c in summary.adopted],
        "shared_addresses": summary.shared_counts(),
        "shared": [
            {"column": column, "address": address, "customers": holders}
            for (column, address), holders in sorted(summary.shared_addresses.items())
        ],
    }


@app.command()
@reports_errors
def show(
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """A customer's profile, consents and timeline."""
    cfg = settings()
    engine = store(cfg)
    with engine.connect() as conn:
        customer = profiles.get_customer(conn, customer_id)
        if customer is None:
            raise InputError.single(customer_id, "no customer with this id")
        consents = profiles.customer_consents(conn, customer_id)
        timeline = profiles.timeline(conn, customer_id)
    if as_json:
        print_json({"customer": customer, "consents": consents, "timeline": timeline})
        return
    _print_profile(customer, consents, timeline)


def _print_profile(customer: CustomerRow, consents: list[ConsentRow], timeline: list[TimelineEvent]) -> None:
    console.print(f"[bold]{customer['id']}[/]  {customer.get('name') or ''}", highlight=False)
    for key in ("email", "phone", "country", "locale", "timezone"):
        value = customer.get(key)
        if value is None:
            continue
        flag = customer.get(f"{key}_invalid")
        suffix = f"  [red](invalid: {flag})[/]" if flag else ""
        console.print(f"  {key:9} {value}{suffix}", highlight=False)
    for key, value in sorted((customer.get("attributes") or {}).items()):
        console.print(f"  {key:9} {value}", highlight=False)
    table = Table("channel", "purpose", "status", "source", "since", title="consents", title_justify="left")
    for c in consents:
        table.add_row(
            c["channel"], c["purpose"], c["status"], c["source"], c["changed_at"].isoformat(timespec="seconds")
        )
    print_table(table)
    events = Table("at", "event", "campaign", "delivery", "details", title="timeline", title_justify="left")
    for e in timeline:
        details = ", ".join(f"{k}={v}" for k, v in (e.get("data") or {}).items())
        events.add_row(
            e["at"].isoformat(timespec="seconds"),
            e["kind"],
            e.get("campaign_id") or "",
            str(e["delivery_id"] or ""),
            details,
        )
    print_table(events)
