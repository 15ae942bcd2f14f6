"""Rendering planned rows when they are sent: a real run plans rows that point at their step's planned content
(see `outreach.planning.planned_content`); the worker that claims them renders each one from that content
and the customer's profile as it is now, and writes the result (subject, body, html, headers, SMS segments)
onto the row in one transaction before any of them goes. So the ledger holds exactly what was sent, and a
row whose message cannot be rendered (a value missing from the profile, a filter refusing it) is suppressed
with the reason a dry run gives (`missing_data`, `render_error`) instead of being sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.rendering import MissingData, RenderError
from outreach.core.settings import Settings
from outreach.customers.unsubscribe import signing_key
from outreach.planning.planned_content import PlannedComposers, load_payloads
from outreach.store.ledger import DeliveryRow, Status
from outreach.store.schema import customers, deliveries

# Planned content never changes once written, so each worker process keeps the composers it has built:
# content id -> (the settings and signing key they were built with, the composers).
_composers: dict[int, tuple[Settings, bytes, PlannedComposers]] = {}
_CACHE_SIZE = 256


def needs_rendering(row: DeliveryRow) -> bool:
    return row.get("content_id") is not None and row["body"] is None


def render_claimed(
    engine: Engine, settings: Settings, rows: Sequence[DeliveryRow]
) -> tuple[list[DeliveryRow], dict[int, tuple[str, str]]]:
    """The claimed rows with their content rendered and written, and the rows that cannot be rendered
    (delivery id -> (reason, detail)), which must not go. Rows rendered before (a retry) are left as they are.
    """
    todo = [r for r in rows if needs_rendering(r)]
    if not todo:
        return list(rows), {}
    key = signing_key(engine, settings)
    refused: dict[int, tuple[str, str]] = {}
    content: dict[int, dict[str, Any]] = {}
    with engine.begin() as conn:
        composers = _composers_for(conn, {int(r["content_id"] or 0) for r in todo}, settings, key)
        profiles = {
            p["id"]: dict(p)
            for p in conn.execute(
                sa.select(customers).where(customers.c.id.in_({r["customer_id"] for r in todo}))
            ).mappings()
        }
        for row in todo:
            profile = profiles.get(row["customer_id"])
            if profile is None:
                refused[row["id"]] = ("missing_data", "the customer's profile is gone")
                continue
            planned = composers.get(int(row["content_id"] or 0))
            if planned is None:
                refused[row["id"]] = ("render_error", f"planned content {row['content_id']} is not in the store")
                continue
            try:
                composed = planned.composer(row["variant"]).compose(row["channel"], profile)
            except MissingData as exc:
                refused[row["id"]] = ("missing_data", str(exc))
                continue
            except (RenderError, KeyError) as exc:
                refused[row["id"]] = ("render_error", str(exc))
                continue
            content[row["id"]] = {
                "subject": composed.subject,
                "body": composed.body,
                "html": composed.html,
                "headers": composed.headers or None,
                "sms_segments": composed.sms_segments,
            }
        if content:
            d = deliveries.c
            conn.execute(
                deliveries.update()
                .where(d.id == sa.bindparam("b_id"), d.status == Status.SENDING, d.body.is_(None))
                .values({name: sa.bindparam(name) for name in ("subject", "body", "html", "headers", "sms_segments")}),
                [{"b_id": i, **values} for i, values in content.items()],
            )
    out: list[DeliveryRow] = []
    for row in rows:
        if row["id"] in content:
            row = cast(DeliveryRow, {**row, **content[row["id"]]})
        out.append(row)
    return out, refused


def _composers_for(conn: Any, ids: set[int], settings: Settings, key: bytes) -> dict[int, PlannedComposers]:
    def usable(content_id: int) -> bool:
        cached = _composers.get(content_id)
        return cached is not None and cached[0] is settings and cached[1] == key

    missing = [i for i in ids if not usable(i)]
    if missing:
        if len(_composers) > _CACHE_SIZE:
            _composers.clear()
        for content_id, payload in load_payloads(conn, missing).items():
            _composers[content_id] = (settings, key, PlannedComposers(payload, settings, key))
    return {i: _composers[i][2] for i in ids if i in _composers}
