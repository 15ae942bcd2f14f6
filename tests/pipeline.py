"""A whole engine for a test: a store, the in-process broker, real SMTP and a Twilio-like server."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign, load_campaign
from outreach.core.settings import Settings
from outreach.customers.importer import import_customers
from outreach.customers.profiles import attribute_catalog
from outreach.planning.planner import plan_campaign
from outreach.planning.steps import CampaignPlan
from outreach.store.database import shift_clock, utcnow
from outreach.store.schema import deliveries
from workers.broker import BrokerHandle


def later(delta: timedelta) -> None:
    """Move the engine's clock forward by `delta` (with the `clock` fixture, which sets it back)."""
    shift_clock(utcnow() + delta - datetime.now(UTC))


@dataclass
class Pipeline:
    settings: Settings
    engine: Engine
    handle: BrokerHandle
    folder: Path

    def import_csv(self, text: str, **options: Any) -> None:
        path = self.folder / f"customers-{len(list(self.folder.glob('customers-*')))}.csv"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        import_customers(self.engine, path, self.settings, **options)

    def campaign(self, text: str, name: str = "campaign.yaml") -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def load(self, path: Path) -> LoadedCampaign:
        with self.engine.connect() as conn:
            catalog = attribute_catalog(conn)
        return load_campaign(path, self.settings, catalog or None)

    def plan(self, path: Path, occurrence: str = "manual") -> CampaignPlan:
        return plan_campaign(self.engine, self.load(path), self.settings, occurrence, dry_run=True)

    def run(self, path: Path, occurrence: str = "manual", *, deliver: bool = True) -> CampaignPlan:
        """Plan and enqueue; with `deliver`, run the in-process workers until every message is handled."""
        if deliver:
            self.handle.start_worker(2)
        plan = plan_campaign(
            self.engine, self.load(path), self.settings, occurrence, dry_run=False, transport=self.handle.transport
        )
        if deliver:
            self.handle.drain(timeout_ms=60_000)
        return plan

    def deliver_queued(self) -> None:
        self.handle.drain(timeout_ms=60_000)

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        query = sa.select(deliveries).order_by(deliveries.c.id)
        for column, value in where.items():
            query = query.where(deliveries.c[column] == value)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def row(self, customer_id: str, **where: Any) -> dict[str, Any]:
        found = self.rows(customer_id=customer_id, **where)
        assert len(found) == 1, found
        return found[0]
