"""Follow-up steps and send-time fallbacks, planned by the scheduler's tick on the engine's clock."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import timedelta
from typing import Any

from outreach.journeys.scheduler import SchedulerCore
from outreach.store.ledger import Status
from outreach.store.schema import deliveries
from tests.pipeline import Pipeline, later
from tests.smtp_server import SmtpServer

CUSTOMERS = """
    id,name,phone,country,email,consent_sms,consent_email,tier
    f1,Ann,+14155550501,US,ann@example.com,yes,yes,gold
    f2,Ben,+14155550502,US,ben@example.com,yes,yes,basic
    f3,Cao,+14155550503,US,cao@example.com,yes,yes,gold
"""


def core_for(p: Pipeline, campaign: str) -> SchedulerCore:
    folder = p.folder / "campaigns"
    folder.mkdir(exist_ok=True)
    (folder / "campaign.yaml").write_text(textwrap.dedent(campaign).lstrip(), encoding="utf-8")
    p.settings = replace(p.settings, campaigns_dir=folder)
    p.handle.start_worker(2)
    return SchedulerCore(p.engine, p.settings, p.handle.transport)


def test_a_follow_up_waits_its_delay_and_honours_unless_and_only_if(
    pipeline: Pipeline, smtp_server: SmtpServer, clock: None
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    core = core_for(
        p,
        """
        id: onboarding
        name: Onboarding
        purpose: service
        steps:
          - id: welcome
            channel: email
            content:
              email: {subject: "Welcome {{ name }}", text: "Welcome"}
          - id: tips
            after: 2d
            unless: delivered
            only_if: "tier == 'gold'"
            channel: email
            content:
              email: {subject: "Tips for {{ name }}", text: "Tips"}
        """,
    )
    core.reload()
    [loaded] = core.folder.loaded()
    from outreach.planning.planner import plan_campaign

    plan_campaign(p.engine, loaded, p.settings, "cohort-1", dry_run=False, transport=p.handle.transport)
    p.deliver_queued()
    with p.engine.begin() as conn:  # the provider reported Cao's welcome delivered
        conn.execute(deliveries.update().where(deliveries.c.customer_id == "f3").values(status=Status.DELIVERED))

    later(timedelta(days=1, hours=23))
    assert core.tick().followups == 0  # not yet
    later(timedelta(hours=2))
    assert core.tick().followups == 1  # Ann: gold, not delivered; Ben is not gold; Cao's was delivered
    p.deliver_queued()
    assert core.tick().followups == 0  # planned once
    tips = p.rows(step_id="tips")
    assert [(r["customer_id"], r["status"], r["occurrence"]) for r in tips] == [("f1", Status.SENT, "cohort-1")]
    assert len(smtp_server.handler.to("ann@example.com")) == 2
    assert len(smtp_server.handler.to("ben@example.com")) == 1


def test_a_permanent_failure_falls_back_to_the_other_channel(
    pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any, clock: None
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    twilio_server.reject("+14155550502", 21211)  # Ben's number is not a valid mobile number
    core = core_for(
        p,
        """
        id: card-notice
        name: Card notice
        purpose: service
        steps:
          - id: tell
            channel: sms
            fallback: email
            content:
              sms: "{{ name }}, your card is on its way."
              email: {subject: "Your card", text: "{{ name }}, your card is on its way."}
        """,
    )
    core.reload()
    [loaded] = core.folder.loaded()
    from outreach.planning.planner import plan_campaign

    plan_campaign(p.engine, loaded, p.settings, dry_run=False, transport=p.handle.transport)
    p.deliver_queued()
    failed = p.row("f2", channel="sms")
    assert (failed["status"], failed["error_code"]) == (Status.FAILED, "21211")

    assert core.tick().fallbacks == 1
    p.deliver_queued()
    assert core.tick().fallbacks == 0
    fallback = p.row("f2", channel="email")
    assert fallback["status"] == Status.SENT and fallback["step_id"] == "tell"
    [mail] = smtp_server.handler.to("ben@example.com")
    assert mail.message["Subject"] == "Your card"
    assert smtp_server.handler.to("ann@example.com") == []  # her SMS went through


def test_the_preview_of_a_follow_up_judges_as_the_scheduler_does(
    pipeline: Pipeline, smtp_server: SmtpServer, clock: None
) -> None:
    """`campaigns plan` of a follow-up, on both stores: those it skips and why, and who is due, as the tick
    that follows plans them."""
    from outreach.journeys.previews import preview_campaign, preview_one_customer
    from outreach.planning.planner import plan_campaign

    p = pipeline
    p.import_csv(CUSTOMERS)
    core = core_for(
        p,
        """
        id: onboarding
        name: Onboarding
        purpose: service
        steps:
          - id: welcome
            channel: email
            content:
              email: {subject: "Welcome {{ name }}", text: "Welcome"}
          - id: tips
            after: 2d
            unless: delivered
            only_if: "tier == 'gold'"
            channel: email
            content:
              email: {subject: "Tips for {{ name }}", text: "Tips"}
        """,
    )
    core.reload()
    [loaded] = core.folder.loaded()
    plan_campaign(p.engine, loaded, p.settings, "cohort-1", dry_run=False, transport=p.handle.transport)
    p.deliver_queued()
    with p.engine.begin() as conn:  # the provider reported Cao's welcome delivered
        conn.execute(deliveries.update().where(deliveries.c.customer_id == "f3").values(status=Status.DELIVERED))

    early = preview_campaign(p.engine, loaded, p.settings, "cohort-1", step_id="tips").steps[0].followup
    assert early is not None and (early["sent_previous"], early["not_yet_due"], early["due"]) == (3, 3, 0)
    later(timedelta(days=2, hours=1))
    [tips] = preview_campaign(p.engine, loaded, p.settings, "cohort-1", step_id="tips").steps
    assert tips.followup is not None
    assert (tips.followup["due"], tips.followup["skipped"]) == (1, {"delivered": 1, "only_if": 1})
    assert dict(tips.by_channel) == {"email": 1} and tips.samples[0]["customer"] == "f1"
    cao = preview_one_customer(p.engine, loaded, p.settings, "f3", "cohort-1", step_id="tips").steps[0]
    assert (cao.status, cao.reason) == ("skipped", "delivered")
    assert p.rows(step_id="tips") == []  # the preview wrote nothing
    assert core.tick().followups == 1  # and the scheduler plans exactly whom it said
    assert [r["customer_id"] for r in p.rows(step_id="tips")] == ["f1"]
