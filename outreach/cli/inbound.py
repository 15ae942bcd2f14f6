"""`outreach inbound ...`: filing what comes back by mail (bounces and replies)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from outreach.cli.common import console, print_json, reports_errors, settings, store
from outreach.core.errors import InputError, OutreachError
from outreach.inbound.mail_filing import OUTCOMES, file_mailbox
from outreach.inbound.mail_sources import MailboxError, mask_location

app = typer.Typer(help="File what customers and mail servers send back.", no_args_is_help=True, rich_markup_mode=None)


@app.command()
@reports_errors
def mailbox(
    location: Annotated[str, typer.Argument(metavar="PATH", help="A Maildir folder, or imap(s)://[user@]host/FOLDER.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """File bounces (DSNs) and replies from a mailbox, then move them aside (to `outreach-processed`).

    IMAP credentials come from the environment: OUTREACH_IMAP_USER (or the user in the URL) and
    OUTREACH_IMAP_PASSWORD. A message that cannot be filed stays where it is for the next run.
    """
    cfg = settings()
    engine = store(cfg)
    try:
        counts = file_mailbox(engine, location, cfg, os.environ)
    except MailboxError as exc:
        if "://" in location:
            raise OutreachError(f"{mask_location(location)}: {exc}") from None
        raise InputError.single(location, str(exc)) from None
    finally:
        engine.dispose()
    data = {"mailbox": mask_location(location), **{k: counts.get(k, 0) for k in OUTCOMES}}
    if as_json:
        print_json(data)
        return
    filed = ", ".join(f"{k.replace('_', ' ')} {counts[k]}" for k in OUTCOMES if counts.get(k))
    console.print(f"{data['mailbox']}: {filed or 'nothing new'}", highlight=False)
    if counts.get("failed"):
        raise typer.Exit(1)
