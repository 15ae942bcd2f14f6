"""What the web app holds for its lifetime: settings, the store, the unsubscribe key, the group committer, the
campaign folder (inbound triggers), the transport to the workers and the WeChat pushes already taken."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from outreach.campaigns.folder import CampaignFolder
from outreach.core.group_commit import GroupCommitter
from outreach.core.settings import Settings
from outreach.inbound.provider_reports import ReportOutcome, StatusReport
from outreach.inbound.triggers import answer_inbound
from outreach.planning.queueing import Transport
from outreach.web.push_replay import PushNonces

log = logging.getLogger(__name__)
# How often a request may look at the campaign folder for changed files (seconds).
CAMPAIGNS_RELOAD_S = 2.0


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    signing_key: bytes
    status_reports: GroupCommitter[StatusReport, ReportOutcome]
    campaigns: CampaignFolder
    # None when the workers cannot be reached from here: answers wait in the ledger for the sweep.
    transport: Transport | None
    # The (timestamp, nonce) pairs of WeChat requests taken, and how far a timestamp may be from our clock.
    push_nonces: PushNonces
    wechat_replay_window: timedelta

    def answer(self, inbound_id: int) -> list[int]:
        """Run the inbound triggers on a message just filed (see `inbound_triggers`); never raises: a message
        whose triggers failed here is answered by the scheduler's sweep."""
        try:
            self.campaigns.reload_every(CAMPAIGNS_RELOAD_S)
            return answer_inbound(self.engine, self.campaigns.loaded(), inbound_id, self.settings, self.transport)
        except Exception:
            log.exception("inbound message %s: triggers failed; the scheduler's sweep will try again", inbound_id)
            return []
