"""The `outreach` command."""

from __future__ import annotations

import typer

from outreach.cli import customers

app = typer.Typer(
    help="Omnichannel outreach: campaigns in YAML, a delivery ledger, SMS and email through workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(customers.app, name="customers")


def main() -> None:
    app()
