"""The core pipeline end to end: plan into the ledger, deliver through the in-process broker to a real SMTP
server and the Twilio-like server, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from outreach.customers import profiles
from outreach.customers.profiles import set_consent
from outreach.delivery.batches import deliver_batch
from outreach.reports.campaign_report import campaign_report
from outreach.store.ledger import Status
from outreach.store.schema import campaign_runs, deliveries
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

CUSTOMERS = """
    id,name,phone,country,email,locale,consent_sms,consent_email,status,age,products
    a1,王芳,13800138001,CN,wang@example.cn,zh-CN,yes,yes,active,34,savings
    a2,Bob,+14155550100,US,bob@example.com,en,no,yes,active,40,savings
    a3,李四,13800138003,CN,,zh-CN,,,active,29,savings
    a4,Amy,+14155550101,US,amy@example.com,en,yes,yes,closed,50,savings
    a5,,13800138005,CN,x@example.cn,zh-CN,yes,yes,active,30,savings
"""

MARKETING = """
    id: promo
    name: Savings promotion
    purpose: marketing
    segment: "status == 'active' and 'savings' in products"
    steps:
      - id: offer
        channel: sms
        fallback: email
        content:
          sms: "【示例银行】{{ name }}您好,新理财产品上线。"
          email:
            subject: "{{ name }}, a new savings product"
            text: "Dear {{ name }}, our new savings product is here."
            html: "<p>Dear {{ name }}, our new <b>savings</b> product is here.</p>"
"""


def by_customer(p: Pipeline) -> dict[str, dict[str, Any]]:
    return {r["customer_id"]: r for r in p.rows()}


def test_marketing_run_sends_reachable_customers_once(
    pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    path = p.campaign(MARKETING)
    plan = p.run(path)
    step = plan.steps[0]
    assert step.audience == 4
    # A real run renders at send time: a5 (no name for the template) is planned, then suppressed by the
    # worker with the reason a dry run gives at once.
    assert dict(step.by_channel) == {"sms": 2, "email": 1}
    assert dict(step.suppressed) == {"no_consent": 1}
    assert step.samples[0]["body"] == "【示例银行】王芳您好,新理财产品上线。回复R拒收"

    rows = by_customer(p)
    assert set(rows) == {"a1", "a2", "a3", "a5"}
    assert rows["a1"]["status"] == Status.SENT and rows["a1"]["channel"] == "sms"
    assert rows["a2"]["status"] == Status.SENT and rows["a2"]["channel"] == "email"  # SMS refused: fallback
    assert (rows["a3"]["status"], rows["a3"]["reason"]) == (Status.SUPPRESSED, "no_consent")
    assert rows["a3"]["detail"] == "email fallback: no_address"
    assert (rows["a5"]["status"], rows["a5"]["reason"]) == (Status.SUPPRESSED, "missing_data")
    assert "name" in rows["a5"]["detail"] and rows["a5"]["body"] is None
    dry = p.plan(path, occurrence="dry")
    assert dict(dry.steps[0].suppressed) == {"no_consent": 1, "missing_data": 1}

    sms = twilio_server.sent_to("+8613800138001")
    assert len(sms) == 1
    assert sms[0]["body"] == "【示例银行】王芳您好,新理财产品上线。回复R拒收"
    assert rows["a1"]["provider_message_id"] == sms[0]["sid"]
    assert rows["a1"]["sms_segments"] == 1
    assert rows["a1"]["body"] == sms[0]["body"]  # the worker wrote what it sent onto the row

    mails = smtp_server.handler.to("bob@example.com")
    assert len(mails) == 1
    mail = mails[0].message
    assert mail["Subject"] == "Bob, a new savings product"
    link = mail["List-Unsubscribe"].strip("<>")
    assert link.startswith(p.settings.public_url + "/u/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert link in text and link in html
    assert mail["Message-ID"] == rows["a2"]["provider_message_id"]

    # The same occurrence again: nothing new is planned or sent.
    again = p.run(path)
    assert again.steps[0].already_planned == 4 and sum(again.steps[0].by_channel.values()) == 0
    assert len(p.rows()) == 4
    assert len(twilio_server.accepted()) == 1
    assert len(smtp_server.handler.received) == 1

    with p.engine.connect() as conn:
        report = campaign_report(conn, "promo")
        run = conn.execute(sa.select(campaign_runs)).mappings().one()
        timeline = [e["kind"] for e in profiles.timeline(conn, "a1")]
    assert report is not None
    assert report["funnel"]["targeted"] == 4 and report["funnel"]["sent"] == 2
    assert report["suppressed_by_reason"] == {"no_consent": 1, "missing_data": 1}
    assert run["status"] == "planned" and "Savings promotion" in run["source"]
    assert timeline[-3:] == ["delivery.planned", "delivery.sending", "delivery.sent"]


def test_service_messages_need_no_marketing_consent_but_respect_opt_out(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    with p.engine.begin() as conn:
        set_consent(conn, "a1", "sms", "service", "revoked", "operator:test")
    path = p.campaign(MARKETING.replace("purpose: marketing", "purpose: service"))
    p.run(path)
    rows = by_customer(p)
    assert rows["a3"]["status"] == Status.SENT and rows["a3"]["channel"] == "sms"
    assert (
        twilio_server.sent_to("+8613800138003")[0]["body"] == "【示例银行】李四您好,新理财产品上线。"
    )  # no opt-out text
    assert rows["a1"]["channel"] == "email"  # SMS revoked for service: the fallback carries it
    assert twilio_server.sent_to("+8613800138001") == []


def test_dry_run_writes_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    plan = p.plan(p.campaign(MARKETING))
    step = plan.steps[0]
    assert plan.dry_run and step.audience == 4
    assert step.sms_segments == 1
    assert [s["customer"] for s in step.samples] == ["a1", "a2"]
    assert step.samples[0]["body"].endswith("回复R拒收")
    assert p.rows() == []
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaign_runs)).scalar_one() == 0


def test_a_batch_delivered_twice_sends_each_message_once(
    pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    plan = p.run(p.campaign(MARKETING), deliver=False)
    ids = plan.row_ids
    assert len(ids) == 3  # a1, a2 and a5 (whose missing name the worker finds)
    threads = [
        threading.Thread(target=deliver_batch, args=(p.engine, p.settings, p.handle.transport, ids)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deliver_batch(p.engine, p.settings, p.handle.transport, ids)
    assert len(twilio_server.accepted()) == 1
    assert len(smtp_server.handler.received) == 1
    assert {r["status"] for r in p.rows() if r["reason"] is None} == {Status.SENT}
    assert all(r["attempts"] == 1 for r in p.rows() if r["status"] == Status.SENT)


def test_consent_withdrawn_after_planning_is_honoured_at_send_time(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(MARKETING), deliver=False)
    with p.engine.begin() as conn:
        set_consent(conn, "a1", "sms", "marketing", "revoked", "sms:keyword:STOP")
    p.deliver_queued()
    row = p.row("a1")
    assert (row["status"], row["reason"]) == (Status.SUPPRESSED, "opted_out")
    assert twilio_server.accepted() == []


def test_transient_smtp_errors_retry_then_send_or_die(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    smtp_server.handler.behaviour.data_failures = 2
    p.run(p.campaign(MARKETING))
    row = p.row("a2")
    assert row["status"] == Status.SENT and row["attempts"] == 3
    assert len(smtp_server.handler.to("bob@example.com")) == 1
    with p.engine.connect() as conn:
        kinds = [e["kind"] for e in profiles.timeline(conn, "a2") if e["delivery_id"] == row["id"]]
    assert kinds.count("delivery.retry") == 2 and kinds[-1] == "delivery.sent"

    smtp_server.handler.behaviour.data_failures = 1000
    p.run(p.campaign(MARKETING), occurrence="second")
    dead = p.row("a2", occurrence="second")
    assert dead["status"] == Status.DEAD
    assert dead["attempts"] == p.settings.max_attempts
    assert dead["error_code"] == "451"


def test_permanent_errors_fail_and_mark_the_profile(
    pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    smtp_server.handler.behaviour.rcpt_replies["bob@example.com"] = "550 5.1.1 No such user"
    twilio_server.reject("+8613800138001", 21610)
    p.run(p.campaign(MARKETING))
    bob, wang = p.row("a2"), p.row("a1")
    assert (bob["status"], bob["error_code"]) == (Status.FAILED, "550")
    assert (wang["status"], wang["error_code"]) == (Status.FAILED, "21610")
    assert smtp_server.handler.received == []
    with p.engine.connect() as conn:
        bob_profile = profiles.get_customer(conn, "a2")
        assert bob_profile is not None and bob_profile["email_invalid"]
        assert profiles.consent_map(conn, ["a1"], ["sms"], "marketing") == {("a1", "sms"): "revoked"}
        assert profiles.consent_map(conn, ["a1"], ["sms"], "service") == {("a1", "sms"): "revoked"}

    # The next occurrence knows: Bob's email is invalid (his SMS was refused at import), Wang's SMS is revoked.
    p.run(p.campaign(MARKETING), occurrence="next")
    bob_next = p.row("a2", occurrence="next")
    assert (bob_next["reason"], bob_next["detail"]) == ("opted_out", "email fallback: invalid_address")
    assert p.row("a1", occurrence="next")["channel"] == "email"
    assert len(smtp_server.handler.to("wang@example.cn")) == 1


def test_twilio_invalid_number_and_rate_limit(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    twilio_server.reject("+8613800138001", 21211)
    p.run(p.campaign(MARKETING))
    assert p.row("a1")["status"] == Status.FAILED
    with p.engine.connect() as conn:
        profile = profiles.get_customer(conn, "a1")
    assert profile is not None and "21211" in profile["phone_invalid"]

    p.import_csv(
        """
        id,name,phone,country,consent_sms,status,products
        r1,Ann,+14155550111,US,yes,active,savings
        """
    )
    twilio_server.fail_next(2, 20429)
    p.run(p.campaign(MARKETING), occurrence="again")
    row = p.row("r1", occurrence="again")
    assert row["status"] == Status.SENT and row["attempts"] == 3
    assert len(twilio_server.sent_to("+14155550111")) == 1


def test_rows_record_exactly_what_was_sent(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(MARKETING))
    row = p.row("a2")
    mail = smtp_server.handler.to("bob@example.com")[0].message
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == row["body"].strip()
    assert mail["Subject"] == row["subject"]
    assert row["headers"]["List-Unsubscribe"] == mail["List-Unsubscribe"]
    with p.engine.connect() as conn:
        keys = conn.execute(sa.select(deliveries.c.idempotency_key).order_by(deliveries.c.id)).scalars().all()
    assert "promo:manual:offer:a2:email" in keys
