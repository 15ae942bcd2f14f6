"""`outreach demo`: the sample customers and the example campaigns, end to end, on the embedded default.

Everything lives in `.demo/` (SQLite store, file outbox), which the demo recreates each time; campaigns
and templates are the ones in `campaigns/` and `templates/`.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import find_campaign_files, load_campaigns
from outreach.core.settings import Settings
from outreach.customers.importer import import_customers
from outreach.customers.profiles import attribute_catalog
from outreach.planning.planner import plan_campaign
from outreach.reports.campaign_report import campaign_report
from outreach.store.database import open_store, utcnow

DEMO_DIR = Path(".demo")


def demo_settings(base: Settings, folder: Path = DEMO_DIR) -> Settings:
    """The user's settings, but with a private store and outbox, the in-process broker, no real providers."""
    return replace(
        base,
        database_url=f"sqlite:///{folder / 'outreach.db'}",
        broker_url="stub://",
        outbox_dir=folder / "outbox",
        smtp_url=None,
        twilio_account_sid=None,
        twilio_auth_token=None,
        secret_key=base.secret_key or "demo-only-secret-key",
        list_columns=tuple(sorted({*base.list_columns, "products"})),
        # The demo shows sending: no quiet hours or holidays to wait out, whenever it is run.
        quiet_hours="",
        quiet_hours_service="",
        holidays_file=folder / "no-holidays.yaml",
    )


def run_demo(base: Settings, console: Console, folder: Path = DEMO_DIR) -> list[dict[str, object]]:
    """Import the sample customers, run every example campaign that runs on demand, return their reports."""
    from rich.progress import Progress, TaskID

    from workers.broker import running_workers

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cfg = demo_settings(base, folder)
    engine = open_store(cfg.database_url)
    sample = resources.files("outreach") / "demo_data" / "customers.csv"
    with resources.as_file(sample) as path:
        summary = import_customers(engine, _dated(path, folder), cfg, allow_invalid_contacts=True)
    console.print(
        f"imported {summary.rows} sample customers ({len(summary.invalid_contacts)} invalid phones/emails kept, "
        "marked invalid)",
        highlight=False,
    )
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    files = find_campaign_files([cfg.campaigns_dir])
    campaigns = [c for c in load_campaigns(files, cfg, catalog) if c.campaign.trigger is None]
    console.print(f"validated {len(files)} campaign files in {cfg.campaigns_dir}/", highlight=False)
    reports = []
    # The worker threads start with the first drain: each campaign is planned, then delivered.
    with running_workers(cfg, engine, start=False) as handle, Progress(console=console) as bar:
        for loaded in campaigns:
            task = bar.add_task(f"{loaded.id}: planning", total=None)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            plan_campaign(engine, loaded, cfg, "demo", dry_run=False, transport=handle.transport, progress=advance)
            bar.update(task, description=f"{loaded.id}: delivering")
            handle.drain()
            bar.update(task, description=f"{loaded.id}: done")
    answered = _simulated_replies(engine, cfg)
    console.print(
        f"filed {answered} simulated SMS replies (3 survey scores, an opt-out, a question) as `outreach serve` "
        "files them from Twilio",
        highlight=False,
    )
    with engine.connect() as conn:
        for loaded in campaigns:
            report = campaign_report(conn, loaded.id, "demo")
            if report is not None:
                reports.append(report)
    engine.dispose()
    return reports


_RELATIVE_DAY = re.compile(r"^today\+(\d+)$")


def _dated(sample: Path, folder: Path) -> Path:
    """The sample customers with `today+N` cells (card due dates) as real dates, N days after the customer's
    own today, so the due-in-3-days reminder finds its customers whenever the demo is run."""
    with sample.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    now = utcnow()
    for row in rows:
        zone = ZoneInfo(row.get("timezone") or "UTC")
        for column, value in row.items():
            found = _RELATIVE_DAY.match(value or "")
            if found:
                row[column] = (now.astimezone(zone).date() + timedelta(days=int(found[1]))).isoformat()
    dated = folder / "customers.csv"
    with dated.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dated


# What some sample customers text back to the survey, as Twilio would post it to /webhooks/twilio/inbound.
SIMULATED_REPLIES = [
    ("+8613800138001", "10"),
    ("+8613800138002", "９分"),
    ("+8613800138004", "6"),
    ("+8613800138010", "退订"),
    ("+8613800138006", "你们的网点几点开门?"),
]


def _simulated_replies(engine: Engine, cfg: Settings) -> int:
    from outreach.inbound.responses import InboundMessage, file_inbound

    for n, (phone, text) in enumerate(SIMULATED_REPLIES):
        file_inbound(engine, InboundMessage("sms", f"SMdemo{n:028d}", phone, text), cfg)
    return len(SIMULATED_REPLIES)
