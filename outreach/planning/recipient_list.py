"""The dry run's recipient list (`outreach campaigns plan FILE --recipients FILE`): one line per customer and
step, written while the plan is made (never the whole audience in memory), as CSV (cells made safe for a
spreadsheet) or, for a name ending in .jsonl, JSON lines. A follow-up step also lists those it would skip
(`skipped`, with why) and those not due yet (`not yet due`, with when)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Any, TextIO

from outreach.core.csv_cells import spreadsheet_safe

FIELDS = ("step", "customer", "channel", "to", "status", "reason", "detail", "variant", "not_before")


class RecipientList:
    def __init__(self, out: TextIO, as_jsonl: bool) -> None:
        self.out = out
        self.as_jsonl = as_jsonl
        self.count = 0
        self._csv = None if as_jsonl else csv.DictWriter(out, fieldnames=FIELDS)
        if self._csv is not None:
            self._csv.writeheader()

    def add(self, row: dict[str, Any]) -> None:
        """Write one planned ledger row (see `step_planner`)."""
        not_before = row["not_before"].isoformat(timespec="seconds") if row["not_before"] else None
        line = {
            "step": row["step_id"],
            "customer": row["customer_id"],
            "channel": row["channel"],
            "to": row["address"],
            "status": "would send" if row["reason"] is None else "suppressed",
            "reason": row["reason"],
            "detail": row["detail"],
            "variant": row["variant"],
            "not_before": not_before,
        }
        self._write(line)

    def add_line(
        self,
        step: str,
        customer: str,
        status: str,
        reason: str | None = None,
        detail: str | None = None,
        not_before: datetime | None = None,
    ) -> None:
        """Write a line about a customer no ledger row would be planned for (a follow-up skips them, or is not
        due for them yet)."""
        line = dict.fromkeys(FIELDS)
        line.update(step=step, customer=customer, status=status, reason=reason, detail=detail)
        line["not_before"] = not_before.isoformat(timespec="seconds") if not_before else None
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        if self._csv is None:
            self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            self._csv.writerow({k: "" if v is None else spreadsheet_safe(str(v)) for k, v in line.items()})
        self.count += 1
