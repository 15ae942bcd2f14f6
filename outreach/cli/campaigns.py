"""`outreach campaigns ...`: validate, dry-run and run campaign files."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import find_campaign_files, load_campaign, load_campaigns
from outreach.campaigns.public_links import public_link_warning
from outreach.cli.common import (
    console,
    err_console,
    existing_catalog,
    print_json,
    print_table,
    reports_errors,
    settings,
    store,
)
from outreach.core.errors import InputError, Problem
from outreach.core.settings import Settings
from outreach.customers.profiles import attribute_catalog
from outreach.journeys.previews import check_step, preview_campaign, preview_one_customer
from outreach.planning.customer_preview import CustomerPreview, FollowupVerdict, StepPreview
from outreach.planning.planner import DEFAULT_OCCURRENCE, check_occurrence, check_runnable, plan_campaign
from outreach.planning.quiet_hours import HOLIDAY, QUIET_HOURS, quiet_hours_warning
from outreach.planning.recipient_list import RecipientList
from outreach.planning.steps import CampaignPlan
from outreach.reports.campaign_report import campaign_report
from outreach.reports.run_progress import run_progress
from outreach.store.database import utcnow
from outreach.store.schema import deliveries

app = typer.Typer(help="Campaign files: validate, dry-run, run.", no_args_is_help=True, rich_markup_mode=None)

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
    refused: list[Problem] = []
    if not find_campaign_files(paths, refused) and not refused:
        raise InputError.single(" ".join(map(str, paths)), "no campaign files (*.yaml) here")
    catalog = existing_catalog(cfg)
    loaded = load_campaigns(paths, cfg, catalog)
    for campaign in loaded:
        console.print(f"ok  {campaign.path}  ({campaign.id})", highlight=False)
    if catalog is None:
        console.print("note: no customers imported yet, so template and segment names were not checked", style="dim")


@app.command()
@reports_errors
def schema(
    output: Annotated[
        Path | None, typer.Option(help="Write it to this file instead of standard output.", show_default=False)
    ] = None,
) -> None:
    """The JSON Schema of campaign files, for editors: put `# yaml-language-server: $schema=PATH` at the top
    of a campaign file (the repository has it as docs/campaign.schema.json)."""
    from outreach.campaigns.json_schema import schema_text

    if output is None:
        sys.stdout.write(schema_text())
        return
    output.write_text(schema_text(), encoding="utf-8")
    console.print(f"wrote {output}", highlight=False)


@app.command()
@reports_errors
def plan(
    file: Annotated[Path, typer.Argument(help="The campaign file.")],
    occurrence: Occurrence = DEFAULT_OCCURRENCE,
    customer: Annotated[
        str | None,
        typer.Option(help="Preview one customer: every step (follow-ups too), the channel and why, the message."),
    ] = None,
    recipients: Annotated[
        Path | None,
        typer.Option(
            help="Also write who gets what, one line per customer and step, as the plan is made: CSV, or JSON "
            "lines for a name ending in .jsonl; - for standard output (the summary then goes to standard error).",
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            help="Only this step (a follow-up: who it would go to now, and who it would skip).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Dry run of every step: the audience, what each channel would carry, who is suppressed and why, a
    sample of each channel, variant and language; for a follow-up, who it would go to now, who it would skip
    (replied, opted out, only_if) and who it is not due for yet. Nothing is written or sent."""
    cfg = settings()
    engine = store(cfg)
    loaded = _load(engine, file, cfg)
    check_occurrence(occurrence)
    check_step(loaded, step)
    if customer is not None:
        if recipients is not None:
            raise InputError.single("--recipients", "lists a whole audience; leave it out with --customer")
        preview = preview_one_customer(engine, loaded, cfg, customer, occurrence, step_id=step)
        if as_json:
            print_json(preview.as_dict())
        else:
            _print_preview(preview)
        return
    if recipients is None:
        result = preview_campaign(engine, loaded, cfg, occurrence, step_id=step)
    else:
        if as_json and str(recipients) == "-":
            raise InputError.single("--recipients", "- and --json would both write to standard output")
        with _recipient_file(recipients) as listing:

            def skipped(step_id: str, customer_id: str, verdict: FollowupVerdict) -> None:
                status = "skipped" if verdict.state == "skipped" else "not yet due"
                listing.add_line(step_id, customer_id, status, verdict.reason, verdict.detail, verdict.due_at)

            result = preview_campaign(
                engine, loaded, cfg, occurrence, step_id=step, on_row=listing.add, on_skipped=skipped
            )
    if as_json:
        print_json(result.as_dict())
    else:
        _print_plan(result, err_console if str(recipients) == "-" else console)
        if recipients is not None and str(recipients) != "-":
            console.print(f"recipients: {listing.count} lines written to {recipients}", highlight=False)


@contextmanager
def _recipient_file(path: Path) -> Iterator[RecipientList]:
    as_jsonl = path.suffix == ".jsonl"
    if str(path) == "-":
        yield RecipientList(sys.stdout, as_jsonl=False)
        sys.stdout.flush()
        return
    try:
        out = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError.single(str(path), f"cannot write the recipient list: {exc.strerror}") from None
    with out:
        yield RecipientList(out, as_jsonl)


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
    from workers.broker import running_workers

    cfg = settings()
    engine = store(cfg)
    loaded = _load(engine, file, cfg)
    check_occurrence(occurrence)
    check_runnable(loaded)
    with running_workers(cfg, engine) as handle, progress_bar() as bar:
        waited = handle.in_process or wait
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


@app.command("test-send")
@reports_errors
def test_send(
    file: Annotated[Path, typer.Argument(help="The campaign file.")],
    to: Annotated[str, typer.Option("--to", help="Your own address: an email, a +CC phone, an OpenID.")],
    as_customer: Annotated[
        str | None,
        typer.Option("--as", help="The customer whose data fills the templates (default: the segment's first)."),
    ] = None,
    step: Annotated[str | None, typer.Option(help="The step (default: the first).")] = None,
    channel: Annotated[str | None, typer.Option(help="The channel (default: the step's own).")] = None,
    variant: Annotated[str | None, typer.Option(help="The variant (default: the customer's).")] = None,
    by: Annotated[str | None, typer.Option(help="Who sends it, for the audit log.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker to send it.")] = 60.0,
) -> None:
    """Send one message of the campaign for real to your own address, rendered for one customer.

    The ledger marks it as a test (campaign `test:ID`): no report, follow-up or frequency cap counts it, and
    its unsubscribe link unsubscribes nobody. Exit 1 when it was not sent."""
    from outreach.planning.trial_send import send_test
    from outreach.store import audit
    from workers.broker import running_workers

    cfg = settings()
    engine = store(cfg)
    loaded = _load(engine, file, cfg)
    with running_workers(cfg, engine) as handle:
        sent = send_test(
            engine, loaded, cfg, to, customer_id=as_customer, step_id=step, channel=channel, variant=variant,
            actor=by or audit.default_actor(),
        )  # fmt: skip
        handle.transport.enqueue([sent.delivery_id])
        handle.deliver_in_process()
        status = _wait_for_row(engine, sent.delivery_id, timeout)
    who = f"step {sent.step_id} by {sent.channel} to {sent.to}, rendered for {sent.customer_id}"
    if sent.variant:
        who += f" (variant {sent.variant})"
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(deliveries.c.error_code, deliveries.c.error_message).where(deliveries.c.id == sent.delivery_id)
        ).one()
    if status in ("sent", "delivered"):
        console.print(f"test {sent.delivery_id} {status}: {who}", highlight=False)
        return
    problem = f": {row.error_code or '-'} {row.error_message or ''}".rstrip() if row.error_message else ""
    err_console.print(
        f"[red]test {sent.delivery_id} {status}[/]{problem} ({who}; see `outreach failures show {sent.delivery_id}`)",
        highlight=False,
    )
    raise typer.Exit(1)


def _wait_for_row(engine: Engine, delivery_id: int, timeout: float) -> str:
    """The row's status once it has left queued/sending, or as it is when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(f"waiting for a worker to send test {delivery_id}", total=None)
        while True:
            with engine.connect() as conn:
                status = str(
                    conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one()
                )
            if status not in ("planned", "queued", "sending") or time.monotonic() > deadline:
                return status
            bar.update(task, description=f"waiting for a worker to send test {delivery_id} ({status})")
            time.sleep(0.3)


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
    loaded = load_campaign(file, cfg, catalog or None)
    for warning in (public_link_warning(loaded, cfg), quiet_hours_warning(cfg, loaded.campaign)):
        if warning:
            err_console.print(f"[yellow]warning[/]: {warning}", highlight=False, soft_wrap=True)
    return loaded


def _print_plan(result: CampaignPlan, console: Console = console) -> None:
    mode = "dry run" if result.dry_run else "run"
    console.print(f"[bold]{result.campaign_id}[/] occurrence {result.occurrence} ({mode})", highlight=False)
    if result.quiet_hours:
        console.print(f"quiet hours: {result.quiet_hours}, in each customer's time zone", highlight=False)
    for step in result.steps:
        followup = step.followup
        table = Table(title=f"step {step.step_id}", title_justify="left", show_header=False)
        if followup is None:
            table.add_row("audience (segment)", str(step.audience))
        else:
            _followup_rows(table, followup)
        if step.already_planned:
            table.add_row("already planned for this occurrence", str(step.already_planned))
        for channel, n in sorted(step.by_channel.items()):
            table.add_row(f"to send by {channel}", str(n))
        for channel, n in sorted(step.marketing_declined.items()):
            table.add_row(
                f"of which said no to marketing {channel} (consent_{channel}=no): a service message still goes; "
                f"consent_{channel}_service=no stops it",
                str(n),
            )
        for reason, n in step.suppressed.most_common():
            table.add_row(f"suppressed: {reason}", str(n))
        if step.deferred_by.get(QUIET_HOURS):
            table.add_row("of which deferred by quiet hours", str(step.deferred_by[QUIET_HOURS]))
        if step.deferred_by.get(HOLIDAY):
            table.add_row("of which deferred by a holiday", str(step.deferred_by[HOLIDAY]))
        if step.sms_segments:
            table.add_row("SMS segments", str(step.sms_segments))
        print_table(table, console)
        if followup is not None and not followup["sent_previous"]:
            hint = f"nobody has been sent step {followup['previous_step']} for occurrence {result.occurrence} yet"
            if followup["other_occurrences"]:
                hint += f" (this campaign's runs: {', '.join(followup['other_occurrences'])}; --occurrence picks one)"
            console.print(f"[dim]{hint}[/]", highlight=False)
        for sample in step.samples:
            head = f"sample to {sample['customer']} by {sample['channel']} ({sample['to']})"
            if sample.get("variant"):
                head += f", variant {sample['variant']}"
            if sample.get("locale"):
                head += f", {sample['locale']}"
            if sample.get("sms_segments"):
                head += f", {sample['sms_segments']} SMS segment(s)"
            console.print(f"[dim]{head}[/]", highlight=False)
            if sample.get("subject"):
                console.print(f"  Subject: {sample['subject']}", highlight=False, markup=False)
            for line in str(sample["body"]).splitlines()[:8]:
                console.print(f"  {line}", highlight=False, markup=False)


def _utc(iso: str | None) -> str:
    """An ISO time as `2026-12-03 10:05 UTC`."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _print_followup_state(step: StepPreview) -> None:
    """For a follow-up the customer is not due for now: why, and when."""
    state = step.followup or {}
    if state.get("state") == "not_yet_due":
        console.print(f"  [yellow]not due yet[/]: due at {_utc(state['due_at'])}; then:", highlight=False)
    elif state.get("state") == "waiting":
        console.print(
            f"  [yellow]not yet[/]: step {state['previous_step']} has not been sent to them; once it has, then:",
            highlight=False,
        )
    if state.get("only_if_now") is False and state.get("state") != "due":
        console.print("  [yellow]only_if is false now[/]: it would be skipped if it still is then", highlight=False)


def _followup_rows(table: Table, followup: dict[str, Any]) -> None:
    """Who a follow-up step was for: sent the step before, then skipped (and why), not due yet, due now."""
    table.add_row("follow-up, as of now", f"{followup['after']} after step {followup['previous_step']}")
    table.add_row(f"sent step {followup['previous_step']}", str(followup["sent_previous"]))
    for reason, n in sorted(followup["skipped"].items()):
        why = "only_if is false" if reason == "only_if" else reason.replace("_", " ")
        table.add_row(f"skipped: {why}", str(n))
    if followup["not_yet_due"]:
        first = _utc(followup["next_due_at"])
        table.add_row(f"not due yet (the first at {first})", str(followup["not_yet_due"]))
    table.add_row("due now", str(followup["due"] + followup["already_planned"]))


def _print_preview(preview: CustomerPreview) -> None:
    console.print(f"[bold]{preview.campaign_id}[/] for customer {preview.customer_id}", highlight=False)
    if not preview.in_segment:
        console.print(
            "[yellow]not in the campaign's segment[/]: a run would not message them; shown as if it did",
            highlight=False,
        )
    for step in preview.steps:
        console.print(f"[bold]step {step.step_id}[/] ({step.when})", highlight=False)
        if step.status == "skipped":
            console.print(f"  [yellow]would be skipped[/]: {step.detail}", highlight=False)
            continue
        _print_followup_state(step)
        if step.status == "already planned":
            console.print("  already planned for this occurrence (see `outreach customers show`)", highlight=False)
            continue
        if step.reason is not None:
            why = f"{step.reason} ({step.detail})" if step.detail else step.reason
            console.print(f"  [red]nothing sent[/] by {step.channel}: {why}", highlight=False)
            continue
        head = f"  by {step.channel} to {step.to}"
        if step.variant:
            head += f", variant {step.variant}"
        if step.deferred_until:
            head += f", held until {step.deferred_until} UTC (quiet hours)"
        if step.sms_segments:
            head += f", {step.sms_segments} SMS segment(s)"
        console.print(head, highlight=False)
        if step.note:
            console.print(f"  [yellow]note[/]: {step.note}", highlight=False, soft_wrap=True)
        if step.subject:
            console.print(f"  Subject: {step.subject}", highlight=False, markup=False)
        for line in str(step.body).splitlines():
            console.print(f"  | {line}", highlight=False, markup=False, soft_wrap=True)
