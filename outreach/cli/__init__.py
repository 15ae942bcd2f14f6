"""The `outreach` command (Typer): one module per group of subcommands; no engine logic of its own.

May import: everything (the library packages, `workers`, outreach.web, outreach.demo).
"""

from __future__ import annotations

import typer

from outreach.cli import (
    campaigns,
    configuration,
    control,
    conversations,
    customers,
    deliveries,
    failures,
    inbound,
    operations,
    recovery,
    replay_cmd,
    serving,
)

app = typer.Typer(
    help="Omnichannel outreach: campaigns in YAML, a delivery ledger, SMS, email, WhatsApp and WeChat through workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rich's panels cut long option names (`--allow-invalid-con…`) at 80 columns.
    rich_markup_mode=None,
)
app.add_typer(customers.app, name="customers")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(inbound.app, name="inbound")
app.add_typer(failures.app, name="failures")
app.add_typer(deliveries.app, name="deliveries")
app.add_typer(control.audit_app, name="audit")
app.add_typer(conversations.app, name="conversations")
app.add_typer(configuration.app, name="config")
failures.app.command("replay")(replay_cmd.replay)
campaigns.app.command("pause")(control.pause)
campaigns.app.command("resume")(control.resume)
campaigns.app.command("cancel")(control.cancel)
customers.app.command("consent")(control.consent)
app.command()(control.reply)
app.command()(operations.worker)
app.command()(serving.serve)
app.command()(serving.scheduler)
app.command()(operations.report)
app.command()(operations.demo)
app.command()(recovery.sweep)


def main() -> None:
    app()
