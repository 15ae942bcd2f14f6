"""`outreach failures ...`: what failed, grouped by error, and one failed row's whole history.

The filter options are declared once here (the `...Option` aliases and `selection_from_options`) so that
other commands on the same selection (`failures replay`) take exactly the same options.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from outreach.cli.common import console, print_json, print_table, reports_errors, settings, store
from outreach.core.errors import InputError
from outreach.delivery.failures import (
    FAILURE_STATES,
    FailureFilter,
    delivery_history,
    failure_count,
    failure_groups,
    failure_rows,
)

app = typer.Typer(
    help="Failed, dead and unknown deliveries: find them by their error.", no_args_is_help=True, rich_markup_mode=None
)

# The filter options, shared by every command that acts on a selection of failures.
CampaignOption = Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")]
OccurrenceOption = Annotated[str | None, typer.Option("--occurrence", help="Only this occurrence of it.")]
StepOption = Annotated[str | None, typer.Option("--step", help="Only this step.")]
ChannelOption = Annotated[str | None, typer.Option("--channel", help="sms, email, whatsapp or wechat.")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help=f"{', '.join(FAILURE_STATES)} (repeat for several; default all three)."),
]
ErrorCodeOption = Annotated[str | None, typer.Option("--error-code", help="Only this provider error code.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Changed at or after: ISO date or date-time (UTC), or 2h / 3d ago.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Changed before: ISO date (that whole day) or date-time, or 2h / 3d ago.")
]
CustomerOption = Annotated[str | None, typer.Option("--customer", help="Only this customer id.")]


def selection_from_options(
    campaign: str | None,
    occurrence: str | None,
    step: str | None,
    channel: str | None,
    status: list[str] | None,
    error_code: str | None,
    since: str | None,
    until: str | None,
    customer: str | None,
) -> FailureFilter:
    """The filter the options describe; bad values raise InputError (`--option: message`, exit 2)."""
    return FailureFilter.from_options(
        campaign=campaign,
        occurrence=occurrence,
        step=step,
        channel=channel,
        statuses=status or (),
        error_code=error_code,
        since=since,
        until=until,
        customer=customer,
    )


@app.command("list")
@reports_errors
def list_(
    campaign: CampaignOption = None,
    occurrence: OccurrenceOption = None,
    step: StepOption = None,
    channel: ChannelOption = None,
    status: StatusOption = None,
    error_code: ErrorCodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    customer: CustomerOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to list (groups and total count them all).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Failed, dead and unknown deliveries: counts by error code first, then the latest rows."""
    if limit < 1:
        raise InputError.single("--limit", f"{limit} is not a positive number of rows")
    selection = selection_from_options(campaign, occurrence, step, channel, status, error_code, since, until, customer)
    engine = store(settings())
    with engine.connect() as conn:
        groups = failure_groups(conn, selection)
        rows = failure_rows(conn, selection, limit)
        total = failure_count(conn, selection)
    if as_json:
        print_json({"filter": selection.as_dict(), "groups": groups, "rows": rows, "total": total})
        return
    _print_failures(groups, rows, total)


def _print_failures(groups: list[dict[str, Any]], rows: list[dict[str, Any]], total: int) -> None:
    if not total:
        console.print("no failed, dead or unknown deliveries match")
        return
    by_code = Table("error code", "count", "statuses", "channels", "sample message", title="by error code")
    by_code.title_justify = "left"
    for group in groups:
        by_code.add_row(
            group["error_code"] or "-",
            str(group["count"]),
            _counts(group["statuses"]),
            _counts(group["channels"]),
            escape(_shorten(group["sample_message"], 80)),
        )
    print_table(by_code)
    heading = f"deliveries ({len(rows)} of {total}, latest first)" if len(rows) < total else "deliveries"
    table = Table(
        "id", "campaign", "occurrence", "step", "customer", "channel", "status", "attempts", "error code", "error",
        "updated",
        title=heading,
        title_justify="left",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["campaign"],
            row["occurrence"],
            row["step"],
            row["customer"],
            row["channel"],
            row["status"],
            str(row["attempts"]),
            row["error_code"] or "-",
            escape(_shorten(row["error_message"], 60)),
            row["updated_at"].isoformat(timespec="seconds"),
        )
    print_table(table)


@app.command()
@reports_errors
def show(
    delivery_id: Annotated[str, typer.Argument(metavar="ID", help="A ledger row id (from `failures list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """One delivery's whole history: the row, then every attempt, error, provider id and report in order."""
    engine = store(settings())
    history = None
    if delivery_id.strip().isdigit():
        with engine.connect() as conn:
            history = delivery_history(conn, int(delivery_id))
    if history is None:
        raise InputError.single(delivery_id, "no delivery with this id")
    if as_json:
        print_json(history)
        return
    _print_history(history["delivery"], history["events"])


def _print_history(row: dict[str, Any], history: list[dict[str, Any]]) -> None:
    console.print(
        f"[bold]delivery {row['id']}[/]  {row['campaign_id']} / {row['occurrence']} / {row['step_id']}  "
        f"customer {row['customer_id']}",
        highlight=False,
    )
    lines = {
        "status": row["status"] + (f" ({row['reason']})" if row["reason"] else ""),
        "channel": f"{row['channel']} ({row['purpose']})",
        "address": row["address"],
        "subject": row["subject"],
        "content": _shorten(row["body"], 100),
        "provider": row["provider"],
        "provider id": row["provider_message_id"],
        "attempts": str(row["attempts"]),
        "error": " ".join(p for p in (row["error_code"], row["error_message"]) if p) or None,
        "detail": row["detail"],
    }
    for label, value in lines.items():
        if value:
            console.print(f"  {label:12} {value}", highlight=False, markup=False)
    table = Table("at", "event", "details", title="history", title_justify="left")
    for event in history:
        data = event.get("data") or {}
        details = ", ".join(f"{k}={v}" for k, v in data.items() if k != "channel")
        table.add_row(event["at"].isoformat(timespec="seconds"), event["kind"], escape(details))
    print_table(table)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _shorten(text: str | None, width: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
