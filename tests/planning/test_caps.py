"""Frequency caps across marketing campaigns, at plan time and at send time, with real SMTP delivery."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from outreach.planning.planner import plan_campaign
from outreach.planning.queueing import enqueue_in_batches
from outreach.store.ledger import Status
from outreach.store.schema import deliveries
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

CUSTOMERS = """
    id,name,email,consent_email
    k1,Ann,ann@example.com,yes
    k2,Ben,ben@example.com,yes
    k3,Cao,cao@example.com,yes
"""


def campaign(campaign_id: str, cap: str | None = "{max: 1, per: 7d}", purpose: str = "marketing") -> str:
    return f"""
        id: {campaign_id}
        name: {campaign_id}
        purpose: {purpose}
        {"frequency_cap: " + cap if cap else ""}
        steps:
          - id: send
            channel: email
            content:
              email: {{subject: "{campaign_id} for {{{{ name }}}}", text: "Hello {{{{ name }}}}"}}
        """


def received(smtp: SmtpServer, address: str) -> int:
    return len(smtp.handler.to(address))


def test_a_second_campaign_within_the_window_is_suppressed_at_plan_time(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(campaign("spring"), "spring.yaml"))
    plan = p.run(p.campaign(campaign("summer"), "summer.yaml"))
    assert dict(plan.steps[0].suppressed) == {"frequency_cap": 3}
    row = p.row("k1", campaign_id="summer")
    assert (row["status"], row["reason"]) == (Status.SUPPRESSED, "frequency_cap")
    assert "1 marketing messages within 7d (the cap is 1)" in row["detail"]
    # service messages are not capped
    p.run(p.campaign(campaign("notice", cap=None, purpose="service"), "notice.yaml"))
    assert received(smtp_server, "ann@example.com") == 2


def test_the_configured_default_cap_applies_to_campaigns_without_one(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.settings = replace(p.settings, frequency_cap_max=2, frequency_cap_per="30d")
    p.import_csv(CUSTOMERS)
    for name in ("one", "two", "three"):
        p.run(p.campaign(campaign(name, cap=None), f"{name}.yaml"))
    assert received(smtp_server, "ann@example.com") == 2
    assert p.row("k2", campaign_id="three")["reason"] == "frequency_cap"


def test_two_campaigns_racing_for_one_customer_send_once_at_send_time(
    pipeline: Pipeline, smtp_server: SmtpServer
) -> None:
    """Both campaigns got past planning (as when planned at the same moment on two hosts): at send time one
    row per customer goes and the other is suppressed, however the workers interleave."""
    p = pipeline
    p.import_csv(CUSTOMERS)
    first = plan_campaign(p.engine, p.load(p.campaign(campaign("first"), "first.yaml")), p.settings, dry_run=False)
    plan_campaign(p.engine, p.load(p.campaign(campaign("second"), "second.yaml")), p.settings, dry_run=False)
    with p.engine.begin() as conn:  # undo the plan-time check, as a race would have
        conn.execute(
            deliveries.update()
            .where(deliveries.c.campaign_id == "second")
            .values(status=Status.QUEUED, reason=None, detail=None, finished_at=None)
        )
        second_ids = list(
            conn.execute(sa.select(deliveries.c.id).where(deliveries.c.campaign_id == "second")).scalars()
        )
    p.handle.start_worker(4)
    # the later rows first, one per broker message, so the workers really do race
    for delivery_id in [*second_ids, *first.row_ids]:
        enqueue_in_batches(p.handle.transport, [delivery_id], 1)
    p.deliver_queued()

    for address in ("ann@example.com", "ben@example.com", "cao@example.com"):
        assert received(smtp_server, address) == 1, address
    for customer_id in ("k1", "k2", "k3"):
        outcomes = sorted((r["status"], r["reason"]) for r in p.rows(customer_id=customer_id))
        assert outcomes == [(Status.SENT, None), (Status.SUPPRESSED, "frequency_cap")], customer_id
