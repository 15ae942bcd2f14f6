"""`outreach sweep`: recovery from a lost broker and from workers that died mid-send (see `outreach.delivery.sweep`)."""

from __future__ import annotations

from typing import Annotated

import typer

from outreach.cli.common import console, print_json, reports_errors, settings, store
from outreach.core.durations import parse_duration
from outreach.core.errors import InputError


@reports_errors
def sweep(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only rows that have sat still this long (like 90s, 15m, 1h); default: the sweep_after setting.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Apply the spill files (answers workers could not write while the store was away); re-enqueue queued
    rows the workers never took; sending rows past the limit become unknown (then their campaign's
    on_unknown: hold or resend); release deferred rows that are due."""
    from outreach.delivery.sweep import sweep as do_sweep
    from workers.broker import running_workers

    cfg = settings()
    text, where = (older_than, "--older-than") if older_than is not None else (cfg.sweep_after, "sweep_after")
    try:
        limit = parse_duration(text)
    except ValueError as exc:
        raise InputError.single(where, str(exc)) from None
    engine = store(cfg)
    with running_workers(cfg, engine) as handle:
        report = do_sweep(engine, handle.transport, cfg, limit)
        handle.deliver_in_process()
    if as_json:
        print_json({"older_than": text, **report.as_dict()})
        return
    spilled = f"{report.spilled} answers applied from spill files, " if report.spilled else ""
    console.print(
        f"sweep (rows still for more than {text}): {spilled}{report.requeued} queued rows enqueued again, "
        f"{report.unstarted} claimed rows never handed over queued again, "
        f"{report.released} deferred rows released, {report.unknown} sending rows now unknown "
        f"({report.resent} sent again under on_unknown: resend, {report.held} held for replay)",
        highlight=False,
        soft_wrap=True,
    )
