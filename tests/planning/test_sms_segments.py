"""The SMS segment count (what the provider bills) is one figure: `campaigns plan`, `campaigns run` and the
export of the ledger give the same."""

from __future__ import annotations

import csv
import io

from tests.workdir import Workdir

NOTICE = """
    id: long-notice
    name: Long notice
    purpose: service
    steps:
      - id: tell
        channel: sms
        content: {sms: "{{ note }}"}
"""


def test_plan_run_and_export_count_the_same_sms_segments(desk: Workdir) -> None:
    # 100, 200 and 400 GSM-7 characters: 1, 2 and 3 segments (160 in one, else 153 a part); more customers
    # than a plan shows samples of
    notes = ["a" * 100, "b" * 200, "c" * 400] * 3
    rows = "".join(f"S{i},+141555502{i:02d},US,{note}\n" for i, note in enumerate(notes))
    desk.write("customers.csv", "id,phone,country,note\n" + rows)
    desk.ok("customers", "import", "customers.csv")
    desk.write("notice.yaml", NOTICE)

    planned = desk.json("campaigns", "plan", "notice.yaml")
    assert planned["steps"][0]["sms_segments"] == 18
    run = desk.ok("campaigns", "run", "notice.yaml", COLUMNS="200")
    [figure] = [line for line in run.stdout.splitlines() if "SMS segments" in line]
    assert figure.split("│")[2].strip() == "18", run.stdout
    exported = desk.ok("deliveries", "export", "--campaign", "long-notice").stdout
    assert sum(int(r["sms_segments"]) for r in csv.DictReader(io.StringIO(exported))) == 18
