"""Cells of the CSV files outreach writes, made safe to open in a spreadsheet (CSV formula injection).

A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` as a formula (and some read a leading tab or
carriage return the same way), so a customer named `=HYPERLINK("http://evil","x")` would run code on the
auditor's machine that opens the export. As OWASP recommends, such a text cell is written with a `'` in front,
which spreadsheets show as text. A cell that is only a number (`-12.5`, or a phone number like
`+8613800138001`) cannot be a formula and is written as it is. Machine consumers can ask for cells exactly as
stored (`outreach deliveries export --raw`).
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: str) -> str:
    """`value`, prefixed with `'` when a spreadsheet would take it for a formula."""
    if value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
