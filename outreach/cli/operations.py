"""Commands for running the engine: workers and reports."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from outreach.cli.common import console, err_console, print_json, print_table, reports_errors, settings, store
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.reports.campaign_report import FUNNEL, campaign_report


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
    engine = store(cfg)  # create or upgrade the schema once, before the processes start
    _apply_spills(cfg, engine)
    engine.dispose()
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


def _apply_spills(cfg: Settings, engine: Engine) -> None:
    """The answers earlier workers spilled while the store was away go to the ledger first, before their rows
    can be taken for lost (once, here, rather than in each process)."""
    from outreach.delivery.spill import apply_spills, spill_files
    from workers.broker import running_workers

    if not spill_files(cfg.spill_dir):
        return
    with running_workers(cfg, engine, start=False) as handle:
        applied = apply_spills(engine, cfg, handle.transport)
    err_console.print(
        f"spill files in {cfg.spill_dir}: {applied.files} applied ({applied.applied} answers written, "
        f"{applied.stale} whose rows had moved on)"
        + (f", {applied.unreadable} unreadable kept (see the messages above)" if applied.unreadable else ""),
        highlight=False,
        soft_wrap=True,
    )


@reports_errors
def report(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID")],
    occurrence: Annotated[str | None, typer.Option(help="Only this occurrence.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """The funnel of a campaign: targeted, suppressed by reason, sent, delivered, failed; A/B variant results."""
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


def print_report(data: dict[str, Any]) -> None:
    """The funnel first, then one row per step and channel with the columns that have anything in them."""
    funnel: dict[str, int] = data["funnel"]
    title = f"report {data['campaign']}" + (f" (occurrence {data['occurrence']})" if data.get("occurrence") else "")
    console.print(f"[bold]{title}[/]", highlight=False)
    shown = [k for k in FUNNEL if funnel[k] or k in ("targeted", "sent")]
    summary = Table(show_header=False, box=None, padding=(0, 2))
    for key in shown:
        summary.add_row(key, str(funnel[key]))
    print_table(summary)
    with_errors = any(row.get("errors_by_code") for row in data["by_step"])
    columns = [*shown, "top errors"] if with_errors else shown
    table = Table("step", "channel", *columns, title="by step and channel", title_justify="left")
    for row in data["by_step"]:
        errors = ", ".join(f"{code} {n}" for code, n in (row.get("errors_by_code") or {}).items())
        table.add_row(row["step"], row["channel"], *(str(row[k]) for k in shown), *([errors] if with_errors else []))
    print_table(table)
    for survey in data.get("surveys", []):
        console.print(_survey_line(survey), highlight=False)
    for test in data.get("variants", []):
        _print_variants(test)
    for heading, key in (("suppressed by reason", "suppressed_by_reason"), ("top error codes", "errors_by_code")):
        counts: dict[str, int] = data[key]
        if counts:
            console.print(f"{heading}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)


def _print_variants(test: dict[str, Any]) -> None:
    """One A/B-tested step: each variant's counts and rates, then each variant against the control."""
    table = Table(
        "variant", "targeted", "sent", "delivered", "replied", "opted out", "reach", "reply rate", "opt-out rate",
        title=f"variants of step {test['step']} (control {test['control']})",
        title_justify="left",
    )  # fmt: skip
    for arm in test["arms"]:
        counts = (arm[k] for k in ("targeted", "sent", "delivered", "replied", "opted_out"))
        rates = (_percent(arm[k]) for k in ("reach_rate", "reply_rate", "opt_out_rate"))
        table.add_row(arm["variant"], *(str(c) for c in counts), *rates)
    print_table(table)
    for comparison in test["comparisons"]:
        console.print(f"{comparison['variant']} against {comparison['control']}:", highlight=False)
        for label, key in (("reply", "reply_rate"), ("opt-out", "opt_out_rate")):
            console.print(f"  {_difference(label, comparison[key])}", highlight=False)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _difference(label: str, result: dict[str, Any]) -> str:
    """`reply rate +2.1 pts (95% CI -0.4 to +4.6): no significant difference`"""
    if result["difference"] is None:
        return f"{label} rate: {result['verdict']}"
    lower, upper = result["ci95"]
    return (
        f"{label} rate {100 * result['difference']:+.1f} pts (95% CI {100 * lower:+.1f} to {100 * upper:+.1f}): "
        f"{result['verdict']}"
    )


def _survey_line(survey: dict[str, Any]) -> str:
    head = f"survey {survey['step']} ({survey['survey']}): {survey['answers']} answers"
    if "nps" in survey:
        return (
            f"{head}, NPS {survey['nps']:+g} (promoters {survey['promoters']}, passives {survey['passives']}, "
            f"detractors {survey['detractors']})"
        )
    if "mean" in survey:
        return f"{head}, mean {survey['mean']:g}"
    return f"{head}: " + ", ".join(f"{k} {v}" for k, v in survey.get("counts", {}).items())


@reports_errors
def demo() -> None:
    """Run the example campaigns on sample customers (SQLite, in-process broker, file outbox in .demo/)."""
    from outreach.demo import DEMO_DIR, run_demo

    reports = run_demo(settings(), console)
    for data in reports:
        print_report(data)
    funnels = [report["funnel"] for report in reports]
    if any(isinstance(funnel, dict) and funnel.get("deferred") for funnel in funnels):
        console.print(
            "\ndeferred: messages planned inside the campaign's quiet hours (21:00-08:00 in each customer's own "
            "time zone) wait for the morning; `outreach scheduler` sends them then."
        )
    outbox = DEMO_DIR / "outbox"
    console.print(f"\nmessages written to {outbox}/ (one file each); the store is {DEMO_DIR / 'outreach.db'}")
    console.print(
        f"look at a customer: OUTREACH_DATABASE_URL=sqlite:///{DEMO_DIR / 'outreach.db'} outreach customers show C001"
    )
