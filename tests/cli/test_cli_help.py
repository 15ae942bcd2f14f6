"""`--help` of every command is readable at 80 columns: no option name or description cut off with `…`, and
tables wrap their cells rather than cutting them."""

from __future__ import annotations

from typing import Any

import typer.main
from typer.testing import CliRunner

from outreach.cli import app
from tests.workdir import Workdir


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under `group` (typer's own click: looked at by what it has, not by its classes)."""
    found = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*path, name))
    return found


def test_every_help_shows_every_option_name_whole_at_80_columns() -> None:
    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 25
    for path, command in commands:
        done = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert done.exit_code == 0, (path, done.output)
        assert "…" not in done.output, (path, done.output)
        for param in command.params:
            for name in param.opts if param.param_type_name == "option" else []:
                assert name in done.output, (path, name, done.output)


def test_tables_wrap_rather_than_cut(desk: Workdir) -> None:
    desk.write("customers.csv", "id,name,email,consent_email\nK001,Wang,wang.fang.long.address@example.cn,yes\n")
    desk.ok("customers", "import", "customers.csv")
    shown = desk.ok("customers", "show", "K001", COLUMNS="80").stdout
    assert "…" not in shown
    cells = "".join(shown.replace("│", "").split())
    assert "wang.fang.long.address@example.cn" in cells and "source=import:customers.csv" in cells
