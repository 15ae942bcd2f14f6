"""`make demo` as a newcomer runs it: every example campaign on the sample customers, on the embedded
default; the due-in-3-days reminder finds the customers due in 3 days of their own calendar."""

from __future__ import annotations

import shutil
from email import message_from_bytes, policy
from pathlib import Path

from tests.workdir import Workdir

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_every_example_campaign(desk: Workdir) -> None:
    for folder in ("campaigns", "templates", "config"):
        shutil.copytree(ROOT / folder, desk.path / folder)
    done = desk.ok("demo", OUTREACH_CONFIG=str(desk.path / "config" / "outreach.toml"))
    for campaign in ("card-due-3d", "nps-2026q4", "wealth-autumn"):
        assert f"report {campaign} (occurrence demo)" in done.stdout
    mails = [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in (desk.path / ".demo" / "outbox" / "email").glob("*.eml")
    ]
    due = {m["To"]: m for m in mails if "到期还款" in m["Subject"] or "is due on" in m["Subject"]}
    # C001 (zh-CN, 107.50 due in 3 days) gets Chinese with the amount as money
    text = due["wang.fang@example.cn"].get_body(("plain",)).get_content()
    assert "尾号4821" in due["wang.fang@example.cn"]["Subject"] and "¥107.50" in text
    # customers due in 10 or 20 days get nothing (C003 has no email; C005 is due in 20 days)
    assert "chen.jing@example.cn" not in due
