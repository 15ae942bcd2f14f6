"""The audit log: every operator action, who did it, when, with which filter and reason, and how many rows
it touched. Written in the same transaction as the action itself, so the log never claims more or less
than what happened."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.store.database import utcnow
from outreach.store.schema import audit_log


def default_actor() -> str:
    """The operating-system user running the command (what `--by` defaults to)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(
    conn: Connection,
    actor: str,
    action: str,
    *,
    target: str | None = None,
    filter: Mapping[str, Any] | None = None,
    reason: str | None = None,
    rows: int = 0,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    conn.execute(
        audit_log.insert().values(
            at=at or utcnow(),
            actor=actor,
            action=action,
            target=target,
            filter=dict(filter) if filter else None,
            reason=reason,
            rows=rows,
            detail=dict(detail) if detail else None,
        )
    )


def entries(
    conn: Connection, *, since: datetime | None = None, action: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The latest entries first."""
    query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    return [dict(r) for r in conn.execute(query).mappings()]
