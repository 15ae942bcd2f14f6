"""Replaying failed deliveries: rows `failed`, `dead` or `unknown` that an operator selects go back to
`queued` and to the workers — never a row that was sent or delivered.

Consent and the address are checked again first: a customer who opted out (or whose address was found
invalid) since is suppressed, not sent; frequency caps are checked again when the row is claimed. By
default the row's recorded content goes again; `rerender` composes it afresh from the campaign file as it
is now and the customer's current profile. Every move is conditional on the state the row leaves, so
replaying the same selection twice sends each message once: the second time there is nothing left in a
failure state to move. The replay is recorded in the audit log in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.campaigns.loading import LoadedCampaign, load_campaign
from outreach.campaigns.rendering import MissingData, RenderError
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers.profiles import attribute_catalog
from outreach.customers.unsubscribe import signing_key
from outreach.delivery.send_checks import consent_and_address_blocks
from outreach.planning.messages import StepComposer
from outreach.planning.queueing import Transport, enqueue_in_batches
from outreach.planning.variants import StepVariants
from outreach.store import audit
from outreach.store.database import utcnow
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.ledger import DeliveryRow, Status, as_row, move
from outreach.store.schema import campaign_runs, customers, deliveries

REPLAYABLE = (Status.FAILED, Status.DEAD, Status.UNKNOWN)


@dataclass
class ReplayPlan:
    """What a replay does (or, dry, would do)."""

    selected: int = 0
    requeued: list[int] = field(default_factory=list)
    suppressed: Counter[str] = field(default_factory=Counter)
    by_group: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # campaign, step, status, code

    def as_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "requeued": len(self.requeued),
            "suppressed": dict(self.suppressed),
            "groups": [
                {"campaign": c, "step": s, "status": st, "error_code": code or None, "rows": n}
                for (c, s, st, code), n in self.by_group.most_common()
            ],
        }


def count_selected(engine: Engine, where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(where, deliveries.c.status.in_(list(REPLAYABLE)))
            ).scalar_one()
        )


def replay(
    engine: Engine,
    settings: Settings,
    where: sa.ColumnElement[bool],
    *,
    transport: Transport | None,
    dry_run: bool,
    rerender: bool = False,
    actor: str = "unknown",
    reason: str | None = None,
    described: Mapping[str, Any] | None = None,
) -> ReplayPlan:
    """Replay the rows matching `where` that are in a failure state; `described` is the filter as the
    operator gave it, for the audit log."""
    now = utcnow()
    plan = ReplayPlan()
    with engine.begin() as conn:
        rows = [
            as_row(r)
            for r in conn.execute(
                sa.select(deliveries)
                .where(where, deliveries.c.status.in_(list(REPLAYABLE)))
                .order_by(deliveries.c.id)
                .with_for_update()
            ).mappings()
        ]
        plan.selected = len(rows)
        blocked = consent_and_address_blocks(conn, rows, "consent checked again at replay")
        fresh = _rerendered(conn, engine, settings, rows, blocked) if rerender else {}
        # target status -> delivery id -> (columns, event data)
        changes: dict[Status, dict[int, tuple[dict[str, Any], dict[str, Any]]]] = {
            Status.SUPPRESSED: {},
            Status.QUEUED: {},
        }
        for row in rows:
            plan.by_group[(row["campaign_id"], row["step_id"], row["status"], row["error_code"] or "")] += 1
            reason_detail = blocked.get(row["id"])
            data: dict[str, Any] = {"previous_status": row["status"], "previous_error": row["error_code"], "by": actor}
            if reason_detail is not None:
                plan.suppressed[reason_detail[0]] += 1
                data["reason"] = reason_detail[0]
                changes[Status.SUPPRESSED][row["id"]] = ({"reason": reason_detail[0], "detail": reason_detail[1]}, data)
            else:
                plan.requeued.append(row["id"])
                values = {"attempts": 0, "next_attempt_at": None, "enqueued_at": now, **fresh.get(row["id"], {})}
                data["rerendered"] = row["id"] in fresh
                changes[Status.QUEUED][row["id"]] = (values, data)
        if dry_run:
            conn.rollback()
            return plan
        for to, by_id in changes.items():
            move(
                conn,
                to,
                list(by_id),
                expect=REPLAYABLE,
                now=now,
                per_row={i: change[0] for i, change in by_id.items()},
                event="delivery.suppressed" if to is Status.SUPPRESSED else "delivery.replayed",
                describe=lambda r, by_id=by_id: by_id[r["id"]][1],  # type: ignore[misc]
            )
        audit.record(
            conn, actor, "replay", target=(described or {}).get("campaign"), filter=described, reason=reason,
            rows=plan.selected, detail={"requeued": len(plan.requeued), "suppressed": dict(plan.suppressed),
                                        "rerender": rerender}, at=now,
        )  # fmt: skip
    if transport is not None and plan.requeued:
        enqueue_in_batches(transport, plan.requeued, settings.batch_size)
    return plan


def _rerendered(
    conn: Connection,
    engine: Engine,
    settings: Settings,
    rows: list[DeliveryRow],
    blocked: dict[int, tuple[str, str]],
) -> dict[int, dict[str, Any]]:
    """New content (and the current address) for each row, from the campaign file as it is now."""
    catalog = attribute_catalog(conn)
    key = signing_key(engine, settings)
    loaded_by_campaign: dict[str, LoadedCampaign] = {}
    out: dict[int, dict[str, Any]] = {}
    profiles = {
        r["id"]: dict(r)
        for r in conn.execute(
            sa.select(customers).where(customers.c.id.in_({r["customer_id"] for r in rows}))
        ).mappings()
    }
    for row in rows:
        if row["id"] in blocked:
            continue
        loaded = loaded_by_campaign.get(row["campaign_id"])
        if loaded is None:
            loaded = _current_campaign(conn, row["campaign_id"], settings, catalog)
            loaded_by_campaign[row["campaign_id"]] = loaded
        step = next((s for s in loaded.campaign.steps if s.id == row["step_id"]), None)
        if step is None:
            raise InputError.single(str(loaded.path), f"--rerender: step {row['step_id']!r} is no longer in the file")
        composer = StepComposer(loaded.campaign, step, loaded.templates[step.id], settings, key)
        variants = StepVariants(loaded, step, composer)
        customer = profiles[row["customer_id"]]
        try:
            composed = variants.composer(row["variant"]).compose(row["channel"], customer)
        except (MissingData, RenderError) as exc:
            blocked[row["id"]] = ("missing_data" if isinstance(exc, MissingData) else "render_error", str(exc))
            continue
        out[row["id"]] = {
            "subject": composed.subject,
            "body": composed.body,
            "html": composed.html,
            "headers": composed.headers or None,
            "sms_segments": composed.sms_segments,
            "address": customer.get(ADDRESS_FIELDS[row["channel"]][0]) if row["channel"] in ADDRESS_FIELDS else None,
        }
    return out


def _current_campaign(conn: Connection, campaign_id: str, settings: Settings, catalog: Any) -> LoadedCampaign:
    path = conn.execute(
        sa.select(campaign_runs.c.source_path)
        .where(campaign_runs.c.campaign_id == campaign_id, campaign_runs.c.source_path.is_not(None))
        .order_by(campaign_runs.c.started_at.desc())
        .limit(1)
    ).scalar()
    if path is None or not Path(path).exists():
        raise InputError.single(campaign_id, f"--rerender: the campaign file {path or '(unknown)'} is not there")
    return load_campaign(Path(path), settings, catalog or None)
