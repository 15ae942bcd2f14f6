"""What must hold after the webhook benchmark: every request answered 200 with the route's body, every callback
applied once to the ledger, every inbound SMS filed as the kind its text and its sender's open question make it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.webhooks.figures import Figures
from bench.webhooks.seed import CALLBACK_CAMPAIGN
from outreach.store.schema import deliveries, events, inbound_messages


def record_store(engine: Engine, figures: Figures) -> None:
    """Count the delivered rows, their events and the inbound messages by kind."""
    with engine.connect() as conn:
        figures.delivered_rows = conn.execute(
            sa.select(sa.func.count()).where(
                deliveries.c.campaign_id == CALLBACK_CAMPAIGN, deliveries.c.status == "delivered"
            )
        ).scalar_one()
        figures.delivered_events = conn.execute(
            sa.select(sa.func.count()).where(events.c.kind == "delivery.delivered")
        ).scalar_one()
        figures.kinds = {
            str(kind): int(n)
            for kind, n in conn.execute(
                sa.select(inbound_messages.c.kind, sa.func.count()).group_by(inbound_messages.c.kind)
            )
        }


def check(figures: Figures) -> None:
    p = figures.problems
    for name, shot in (
        ("status callbacks", figures.callbacks),
        ("raw status callbacks", figures.raw_callbacks),
        ("inbound", figures.replies),
        ("raw inbound", figures.raw_replies),
    ):
        if shot is None:
            continue
        expected = figures.rows if "callbacks" in name else figures.inbound
        if shot.phase.items != expected or set(shot.answers) != {"200"}:
            p.append(f"{name}: {expected:,} requests, answers {shot.answers}")
        if shot.wrong_bodies:
            p.append(f"{name}: {shot.wrong_bodies:,} answers of 200 with an unexpected body")
    if figures.callbacks is not None:
        if figures.delivered_rows != figures.rows:
            p.append(f"{figures.delivered_rows:,} ledger rows delivered, expected {figures.rows:,}")
        if figures.delivered_events != figures.rows:
            p.append(f"{figures.delivered_events:,} delivery.delivered events, expected {figures.rows:,}")
    if figures.replies is not None and figures.kinds != figures.expected_kinds:
        p.append(f"inbound messages filed as {figures.kinds}, expected {figures.expected_kinds}")
