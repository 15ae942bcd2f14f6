"""The `outreach` command."""

from __future__ import annotations

import typer

from outreach.cli import campaigns, customers, inbound, operations, serving

app = typer.Typer(
    help="Omnichannel outreach: campaigns in YAML, a delivery ledger, SMS and email through workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(customers.app, name="customers")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(inbound.app, name="inbound")
app.command()(operations.worker)
app.command()(serving.serve)
app.command()(serving.scheduler)
app.command()(operations.report)
app.command()(operations.demo)


def main() -> None:
    app()
