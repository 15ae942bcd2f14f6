"""`outreach campaigns ...`: validate, dry-run and run campaign files."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from outreach.campaigns import find_campaign_files, load_campaign, load_campaigns
from outreach.cli.common import console, err_console, existing_catalog, print_json, reports_errors, settings, store
from outreach.config import Settings
from outreach.db import utcnow
from outreach.errors import InputError
from outreach.planner import DEFAULT_OCCURRENCE, check_occurrence, check_runnable, plan_campaign
from outreach.profiles import attribute_catalog
from outreach.reports import campaign_report
from outreach.run_progress import run_progress
from outreach.step_planner import CampaignPlan

app = typer.Typer(help="Campaign files: validate, dry-run, run.", no_args_is_help=True)

Occurrence = Annotated[
    str,
    typer.Option(help="Which occurrence this run is; running the same occurrence again sends nothing new."),
]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


@app.command()
@reports_errors
def validate(paths: Annotated[list[Path], typer.Argument(help="Campaign files or folders of *.yaml.")]) -> None:
    """Check campaign files; every problem is printed as PATH:LINE:COL: message (exit status 2)."""
    cfg = settings()
    files = find_campaign_files(paths)
    if not files:
        raise InputError.single(" ".join(map(str, paths)), "no campaign files (*.yaml) here")
    catalog = existing_catalog(cfg)
    loaded = load_campaigns(paths, cfg, catalog)
    for campaign in loaded:
        console.print(f"ok  {campaign.path}  ({campaign.id})", highlight=False)
    if catalog is None:
        console.print("note: no customers imported yet, so template and segment names were not checked", style="dim")


@app.command()
@reports_errors
def plan(
    file: Annotated[Path, typer.Argument(help="The campaign file.")],
    occurrence: Occurrence = DEFAULT_OCCURRENCE,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Dry run: audience, what each channel would carry, who is suppressed and why, three samples."""
    cfg = settings()
    engine = store(cfg)
    loaded = _load(engine, file, cfg)
    result = plan_campaign(engine, loaded, cfg, check_occurrence(occurrence), dry_run=True)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_plan(result)


@app.command()
@reports_errors
def run(
    file: Annotated[Path, typer.Argument(help="The campaign file.")],
    occurrence: Occurrence = DEFAULT_OCCURRENCE,
    wait: Annotated[
        bool,
        typer.Option(
            help="Return only when no message of this run is queued or sending; exit 1 if any ended failed, "
            "dead or unknown."
        ),
    ] = False,
) -> None:
    """Plan the campaign into the ledger and hand it to the workers.

    With the in-process broker (stub://) this command delivers before it returns, as with --wait. Messages
    deferred by quiet hours are not waited for (`outreach scheduler` sends them when the hours end)."""
    from workers.broker import setup

    cfg = settings()
    engine = store(cfg)
    loaded = _load(engine, file, cfg)
    check_occurrence(occurrence)
    check_runnable(loaded)
    handle = setup(cfg, engine)
    if handle.in_process:
        handle.start_worker()
    waited = handle.in_process or wait
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"planning {loaded.id}", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = plan_campaign(
                engine, loaded, cfg, occurrence, dry_run=False, transport=handle.transport, progress=advance
            )
            if handle.in_process:
                failure: list[BaseException] = []

                def deliver() -> None:
                    try:
                        handle.drain()
                    except BaseException as exc:  # re-raised below, in this thread
                        failure.append(exc)

                delivering = threading.Thread(target=deliver, name="in-process delivery", daemon=True)
                delivering.start()
                _watch(engine, loaded.id, occurrence, bar, "delivering (in-process)", delivering.is_alive)
                delivering.join()
                if failure:
                    raise failure[0]
            elif wait:
                _watch(engine, loaded.id, occurrence, bar, "waiting for workers", lambda: True)
    finally:
        handle.close()
    _print_plan(result)
    with engine.connect() as conn:
        report = campaign_report(conn, loaded.id, occurrence)
        progress = run_progress(conn, loaded.id, occurrence)
    if report:
        funnel = report["funnel"]
        console.print("ledger: " + ", ".join(f"{k} {v}" for k, v in funnel.items() if v), highlight=False)
    if waited and progress.not_sent:
        counts = ", ".join(f"{status} {n}" for status, n in sorted(progress.not_sent.items()))
        err_console.print(
            f"[red]not sent[/]: {counts} (see `outreach failures list --campaign {loaded.id} "
            f"--occurrence {occurrence}`)",
            highlight=False,
        )
        raise typer.Exit(1)


def _watch(
    engine: Engine, campaign_id: str, occurrence: str, bar: Progress, label: str, running: Callable[[], bool]
) -> None:
    """Show the run's progress until no message of it may go now (or `running()` says the work stopped)."""
    task = bar.add_task(label, total=None)
    while True:
        with engine.connect() as conn:
            progress = run_progress(conn, campaign_id, occurrence)
        total = progress.to_send - progress.deferred
        bar.update(
            task,
            completed=progress.finished,
            total=total,
            description=f"{label}: {progress.describe(utcnow())}",
        )
        if progress.open <= 0 or not running():
            return
        time.sleep(0.5)


def _load(engine: Engine, file: Path, cfg: Settings) -> Any:
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    return load_campaign(file, cfg, catalog or None)


def _print_plan(result: CampaignPlan) -> None:
    mode = "dry run" if result.dry_run else "run"
    console.print(f"[bold]{result.campaign_id}[/] occurrence {result.occurrence} ({mode})", highlight=False)
    for step in result.steps:
        table = Table(title=f"step {step.step_id}", title_justify="left", show_header=False)
        table.add_row("audience (segment)", str(step.audience))
        if step.already_planned:
            table.add_row("already planned for this occurrence", str(step.already_planned))
        for channel, n in sorted(step.by_channel.items()):
            table.add_row(f"to send by {channel}", str(n))
        for reason, n in step.suppressed.most_common():
            table.add_row(f"suppressed: {reason}", str(n))
        if step.deferred:
            table.add_row("of which deferred (quiet hours, holidays)", str(step.deferred))
        if step.sms_segments:
            table.add_row("SMS segments", str(step.sms_segments))
        console.print(table)
        for sample in step.samples:
            head = f"sample to {sample['customer']} by {sample['channel']} ({sample['to']})"
            if sample.get("sms_segments"):
                head += f", {sample['sms_segments']} SMS segment(s)"
            console.print(f"[dim]{head}[/]", highlight=False)
            if sample.get("subject"):
                console.print(f"  Subject: {sample['subject']}", highlight=False, markup=False)
            for line in str(sample["body"]).splitlines()[:8]:
                console.print(f"  {line}", highlight=False, markup=False)
