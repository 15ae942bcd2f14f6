"""Commands for running the engine: workers and reports."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from outreach.cli.common import console, print_json, reports_errors, settings, store
from outreach.errors import InputError
from outreach.reports import FUNNEL, campaign_report


@reports_errors
def worker(
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="Threads per process.")] = 8,
) -> None:
    """Run Dramatiq workers that deliver queued messages (needs OUTREACH_BROKER_URL=redis://...)."""
    cfg = settings()
    if not cfg.broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise InputError.single(
            "OUTREACH_BROKER_URL",
            f"{cfg.broker_url!r} runs deliveries inside each command; set redis://host:port/db to run workers",
        )
    store(cfg).dispose()  # create or upgrade the schema once, before the processes start
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.main",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--queues",
        cfg.queue_name,
    ]
    os.execv(sys.executable, argv)


@reports_errors
def report(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    occurrence: Annotated[str | None, typer.Option(help="Only this occurrence.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """The funnel of a campaign: targeted, suppressed by reason, sent, delivered, failed."""
    cfg = settings()
    engine = store(cfg)
    with engine.connect() as conn:
        data = campaign_report(conn, campaign_id, occurrence)
    if data is None:
        raise InputError.single(campaign_id, "this campaign has not run (no ledger rows)")
    if as_json:
        print_json(data)
        return
    print_report(data)


def print_report(data: dict[str, object]) -> None:
    console.print(f"[bold]report {data['campaign']}[/]", highlight=False)
    funnel = data["funnel"]
    assert isinstance(funnel, dict)
    table = Table("step", "channel", *FUNNEL)
    by_step = data["by_step"]
    assert isinstance(by_step, list)
    for row in by_step:
        table.add_row(row["step"], row["channel"], *(str(row[k]) for k in FUNNEL))
    table.add_row("[bold]all[/]", "", *(f"[bold]{funnel[k]}[/]" for k in FUNNEL))
    console.print(table)
    for title, key in (("suppressed by reason", "suppressed_by_reason"), ("top error codes", "errors_by_code")):
        counts = data[key]
        assert isinstance(counts, dict)
        if counts:
            console.print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)


@reports_errors
def demo() -> None:
    """Run the example campaigns on sample customers (SQLite, in-process broker, file outbox in .demo/)."""
    from outreach.demo import DEMO_DIR, run_demo

    reports = run_demo(settings(), console)
    for data in reports:
        print_report(data)
    outbox = DEMO_DIR / "outbox"
    console.print(f"\nmessages written to {outbox}/ (one file each); the store is {DEMO_DIR / 'outreach.db'}")
    console.print(
        f"look at a customer: OUTREACH_DATABASE_URL=sqlite:///{DEMO_DIR / 'outreach.db'} outreach customers show C001"
    )
