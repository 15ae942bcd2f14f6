"""`outreach failures replay`: send failed, dead and unknown deliveries again, exactly those selected."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from outreach.cli.common import console, print_json, reports_errors, settings, store
from outreach.cli.failures import (
    CampaignOption,
    ChannelOption,
    CustomerOption,
    ErrorCodeOption,
    OccurrenceOption,
    SinceOption,
    StatusOption,
    StepOption,
    UntilOption,
    selection_from_options,
)
from outreach.core.errors import InputError
from outreach.store import audit


@reports_errors
def replay(
    campaign: CampaignOption = None,
    occurrence: OccurrenceOption = None,
    step: StepOption = None,
    channel: ChannelOption = None,
    status: StatusOption = None,
    error_code: ErrorCodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    customer: CustomerOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    rerender: Annotated[
        bool, typer.Option("--rerender", help="Compose the messages again from the campaign file as it is now.")
    ] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who replays (default: the OS user).")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required above replay_reason_threshold).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Move the selected failed / dead / unknown rows back to queued and hand them to the workers.

    Never touches sent or delivered rows; a customer who opted out since is suppressed instead; replaying
    the same selection twice sends each message once. Recorded in the audit log.
    """
    from outreach.delivery.replay import count_selected
    from outreach.delivery.replay import replay as do_replay
    from workers.broker import running_workers

    selection = selection_from_options(campaign, occurrence, step, channel, status, error_code, since, until, customer)
    cfg = settings()
    engine = store(cfg)
    selected = count_selected(engine, selection.where())
    if not dry_run and selected > cfg.replay_reason_threshold and not (reason and reason.strip()):
        raise InputError.single(
            "--reason", f"required to replay more than {cfg.replay_reason_threshold} rows ({selected} selected)"
        )
    actor = by or audit.default_actor()
    if selected == 0:
        if as_json:
            print_json({"dry_run": dry_run, "selected": 0, "requeued": 0, "suppressed": {}, "groups": []})
        else:
            console.print("nothing to replay: no failed, dead or unknown rows match", highlight=False)
        return
    if dry_run:
        plan = do_replay(engine, cfg, selection.where(), transport=None, dry_run=True, rerender=rerender)
        _show(plan.as_dict(), as_json, dry=True)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise InputError.single("--yes", f"{selected} rows would be replayed: confirm with --yes (no terminal)")
        typer.confirm(f"Replay {selected} deliveries?", abort=True)
    with running_workers(cfg, engine) as handle:
        plan = do_replay(
            engine, cfg, selection.where(), transport=handle.transport, dry_run=False, rerender=rerender,
            actor=actor, reason=reason, described=selection.as_dict(),
        )  # fmt: skip
        handle.deliver_in_process()
    _show(plan.as_dict(), as_json, dry=False)


def _show(data: dict[str, object], as_json: bool, *, dry: bool) -> None:
    if as_json:
        print_json({"dry_run": dry, **data})
        return
    verb = "would requeue" if dry else "requeued"
    suppressed = data["suppressed"]
    extra = ", ".join(f"{k} {v}" for k, v in suppressed.items()) if isinstance(suppressed, dict) else ""
    console.print(
        f"{data['selected']} selected; {verb} {data['requeued']}" + (f"; suppressed: {extra}" if extra else ""),
        highlight=False,
    )
    groups = data["groups"]
    if isinstance(groups, list):
        for g in groups:
            console.print(
                f"  {g['campaign']} / {g['step']}: {g['status']} {g['error_code'] or ''} x{g['rows']}", highlight=False
            )
