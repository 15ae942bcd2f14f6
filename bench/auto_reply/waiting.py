"""Waiting for the workers: until every complaint has a reply at the WeChat API, until the ledger is done."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine

from bench.auto_reply.wechat_api import TimedWeChatServer
from bench.processes import Running
from bench.report import log
from outreach.store.ledger import open_count

POLL_SECONDS = 0.02


def wait_for_replies(wechat: TimedWeChatServer, openids: list[str], timeout: float, workers: Running) -> bool:
    """Until each openid has at least one reply; False after `timeout` seconds."""
    wanted = set(openids)
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 5
    while True:
        arrived = wechat.arrived()
        missing = sum(1 for o in wanted if not arrived.get(o))
        if not missing:
            return True
        workers.check_running()
        now = time.monotonic()
        if now > deadline:
            return False
        if now > next_report:
            log(f"  waiting for {missing:,} of {len(wanted):,} replies ...")
            next_report = now + 5
        time.sleep(POLL_SECONDS)


def wait_for_ledger(engine: Engine, campaign_id: str, timeout: float) -> None:
    """Until the campaign has no open ledger row, or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if open_count(conn, campaign_id) == 0:
                return
        time.sleep(0.2)
