"""What the web app holds for its lifetime: settings, the store, the unsubscribe key, the group committer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from outreach.config import Settings
from outreach.group_commit import GroupCommitter
from outreach.status_reports import ReportOutcome, StatusReport


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    signing_key: bytes
    status_reports: GroupCommitter[StatusReport, ReportOutcome]
