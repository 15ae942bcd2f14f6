"""`outreach config show`: the settings every command would use, each with where it came from; secrets masked."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from outreach.cli.common import console, print_json, print_table, reports_errors
from outreach.core.settings_sources import effective_settings

app = typer.Typer(
    help="The settings in effect: defaults, the config file, OUTREACH_* variables.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
@reports_errors
def show(as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Every setting's value and its source: default, the config file's FILE:LINE, or env VARIABLE. Secrets
    show as *** (set) or unset, and passwords inside URLs as ***."""
    effective = effective_settings()
    if as_json:
        print_json(effective.as_dict())
        return
    console.print(Text(f"config file: {effective.config_file or 'none'}"))
    table = Table("setting", "value", "source", title_justify="left")
    for setting in effective.settings:
        # Text cells: a value such as `[red]` is printed as written, not read as rich markup
        table.add_row(Text(setting.name), Text(_cell(setting.value)), Text(setting.source))
    print_table(table)


def _cell(value: Any) -> str:
    """A value as an operator would write it in the config file, tables one `key = value` per line."""
    if value is None:
        return "unset"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "\n".join(f"{key} = {json.dumps(text, ensure_ascii=False)}" for key, text in value.items())
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
