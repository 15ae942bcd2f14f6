"""Inbound SMS over real HTTP: opt-out and opt-in keywords, HELP, survey answers and plain replies land on
the sender's profile once, and change what the bank may send next."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from outreach.customers.profiles import customer_consents, get_customer, timeline
from outreach.store.ledger import Status
from outreach.store.schema import deliveries, inbound_messages
from outreach.web.twilio_hooks import INBOUND_PATH
from tests.pipeline import Pipeline
from tests.twilio_server import inbound_params
from tests.web_server import WebServer

CUSTOMERS = """
    id,name,phone,country,email,locale,consent_sms,consent_email,status
    c1,王芳,13800138001,CN,wang@example.cn,zh-CN,yes,yes,active
    c2,Bob,+14155550100,US,bob@example.com,en,yes,yes,active
    c3,Amy,+14155550101,US,amy@example.com,en,yes,no,active
"""

PROMO = """
    id: promo
    name: Promotion
    purpose: marketing
    steps:
      - id: offer
        channel: sms
        content:
          sms: "{{ name }}, a new savings product."
"""

NPS = """
    id: nps
    name: Service survey
    purpose: service
    steps:
      - id: ask
        channel: sms
        expects: {survey: nps}
        content:
          sms: "{{ name }}, how likely are you to recommend us? Reply 0-10."
"""


def text_of(p: Pipeline, web: WebServer, twilio: Any, phone: str, body: str) -> Any:
    answer = twilio.send_inbound(web.url(INBOUND_PATH), phone, body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    return ET.fromstring(answer.text)


def consent(p: Pipeline, customer_id: str, channel: str = "sms", purpose: str = "marketing") -> tuple[str, str]:
    with p.engine.connect() as conn:
        found = {(c["channel"], c["purpose"]): c for c in customer_consents(conn, customer_id)}
    row = found[(channel, purpose)]
    return row["status"], row["source"]


def event_kinds(p: Pipeline, customer_id: str) -> list[str]:
    with p.engine.connect() as conn:
        return [e["kind"] for e in timeline(conn, customer_id)]


@pytest.mark.parametrize("word", ["STOP", " stop ", "Ｓｔｏｐ", "unsubscribe", "R", "ｔｄ", "退订", " 拒收 ", "取消"])
def test_opt_out_words_revoke_marketing_sms_and_later_runs_skip_the_customer(
    pipeline: Pipeline, web: WebServer, twilio_server: Any, word: str
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(PROMO), "week-1")
    reply = text_of(p, web, twilio_server, "+8613800138001", word)
    status, source = consent(p, "c1")
    assert status == "revoked"
    assert source.startswith("sms:keyword")
    messages = [m.text for m in reply.iter("Message")]
    if word.strip().lower() in {"stop", "unsubscribe"}:
        assert messages == []  # Twilio confirms its own words itself
    else:
        assert messages == ["您已退订营销短信,如需恢复请回复START。"]
    first = p.row("c1", occurrence="week-1")
    assert first["opted_out_at"] is not None

    p.run(p.campaign(PROMO), "week-2")
    again = p.row("c1", occurrence="week-2")
    assert (again["status"], again["reason"]) == (Status.SUPPRESSED, "opted_out")
    assert len(twilio_server.sent_to("+8613800138001")) == 1
    assert len(twilio_server.sent_to("+14155550100")) == 2


def test_a_keyword_inside_a_sentence_is_a_reply_not_an_opt_out(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(PROMO))
    text_of(p, web, twilio_server, "+14155550100", "Please don't stop, I like these")
    assert consent(p, "c2") == ("granted", "import:customers-0.csv")
    row = p.row("c2")
    assert row["replied_at"] is not None and row["opted_out_at"] is None
    assert "reply.received" in event_kinds(p, "c2")


def test_start_restores_what_stop_revoked_and_nothing_more(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    text_of(p, web, twilio_server, "+14155550100", "STOP")
    assert consent(p, "c2")[0] == "revoked"
    text_of(p, web, twilio_server, "+14155550100", "start")
    assert consent(p, "c2") == ("granted", "sms:keyword START")
    # YES from someone who never opted out grants nothing
    p.import_csv("id,name,phone,country\nc4,Dan,+14155550109,US\n")
    text_of(p, web, twilio_server, "+14155550109", "YES")
    with p.engine.connect() as conn:
        assert customer_consents(conn, "c4") == []


def test_help_gets_the_help_text_in_the_customers_language(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    zh = text_of(p, web, twilio_server, "+8613800138001", "帮助")
    en = text_of(p, web, twilio_server, "+14155550100", "help")
    assert [m.text for m in zh.iter("Message")] == [p.settings.sms_help["zh"]]
    assert [m.text for m in en.iter("Message")] == [p.settings.sms_help["en"]]
    assert consent(p, "c2")[0] == "granted"


def test_the_same_message_delivered_twice_is_filed_once(pipeline: Pipeline, web: WebServer, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NPS))
    params = inbound_params(twilio_server.account_sid, "SM" + "a" * 32, "+14155550100", "9", "+15005550006")
    for _ in range(3):
        assert twilio_server.post_webhook(web.url(INBOUND_PATH), params).status_code == 200
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_messages)).scalar_one() == 1
    assert event_kinds(p, "c2").count("survey.answered") == 1
    assert event_kinds(p, "c2").count("reply.received") == 1


@pytest.mark.parametrize(("text", "score"), [("9", 9), (" 10 ", 10), ("９分", 9), ("0", 0), ("七分", 7)])
def test_an_nps_answer_lands_on_the_profile_and_in_segments(
    pipeline: Pipeline, web: WebServer, twilio_server: Any, text: str, score: int
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NPS))
    text_of(p, web, twilio_server, "+8613800138001", text)
    with p.engine.connect() as conn:
        customer = get_customer(conn, "c1")
        events = timeline(conn, "c1")
    assert customer is not None and customer["attributes"]["nps_score"] == score
    [answered] = [e for e in events if e["kind"] == "survey.answered"]
    assert answered["data"]["answer"] == score and answered["data"]["survey"] == "nps"
    assert answered["campaign_id"] == "nps"
    assert p.row("c1")["replied_at"] is not None

    detractors = p.campaign(
        """
        id: detractors
        name: Call back unhappy customers
        purpose: service
        segment: "nps_score <= 6"
        steps:
          - id: sorry
            channel: sms
            content:
              sms: "{{ name }}, we are sorry. A manager will call you."
        """,
        "detractors.yaml",
    )
    plan = p.plan(detractors)
    assert plan.steps[0].audience == (1 if score <= 6 else 0)


def test_unreadable_or_late_answers_are_kept_as_replies(pipeline: Pipeline, web: WebServer, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NPS))
    text_of(p, web, twilio_server, "+14155550100", "11")  # out of the scale
    text_of(p, web, twilio_server, "+14155550101", "pretty good overall")
    with p.engine.connect() as conn:
        for customer_id in ("c2", "c3"):
            customer = get_customer(conn, customer_id)
            assert customer is not None and "nps_score" not in customer["attributes"]
    assert "survey.answered" not in event_kinds(p, "c2") + event_kinds(p, "c3")
    assert p.row("c2")["replied_at"] is not None

    # an answer after the survey window (7 days by default) is only a reply
    late = p.row("c1")
    with p.engine.begin() as conn:
        conn.execute(
            deliveries.update().where(deliveries.c.id == late["id"]).values(sent_at=late["sent_at"] - timedelta(days=8))
        )
    text_of(p, web, twilio_server, "+8613800138001", "8")
    assert "survey.answered" not in event_kinds(p, "c1")


def test_a_message_from_an_unknown_number_gets_a_provisional_profile_and_no_campaigns(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    reply = text_of(p, web, twilio_server, "+14155559999", "who is this?")
    assert list(reply.iter("Message")) == []
    text_of(p, web, twilio_server, "+14155559999", "STOP")
    with p.engine.connect() as conn:
        rows = conn.execute(sa.select(inbound_messages).order_by(inbound_messages.c.id)).mappings().all()
        stranger = rows[0]["customer_id"]
        profile = get_customer(conn, stranger)
        consents = {(r["channel"], r["purpose"]): r["status"] for r in customer_consents(conn, stranger)}
    assert stranger.startswith("provisional-sms-") and rows[1]["customer_id"] == stranger
    assert [(r["body"], r["kind"]) for r in rows] == [("who is this?", "reply"), ("STOP", "opt_out")]
    assert profile is not None and profile["phone"] == "+14155559999" and profile["provisional_since"] is not None
    assert consents == {("sms", "marketing"): "revoked"}  # a stranger's no is kept too
    everyone = p.campaign(
        """
        id: notice
        name: Notice to everyone
        purpose: service
        steps:
          - id: one
            channel: sms
            content: {sms: "Branch hours change"}
        """
    )
    plan = p.plan(everyone)
    assert plan.steps[0].audience == 3  # the three imported customers, not the stranger


def test_unsigned_or_oversized_inbound_messages_change_nothing(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    params = inbound_params(twilio_server.account_sid, "SM" + "b" * 32, "+14155550100", "STOP", "+15005550006")
    assert twilio_server.post_webhook(web.url(INBOUND_PATH), params, sign=False).status_code == 403
    huge = {**params, "Body": "STOP" + " " * p.settings.max_request_bytes}
    assert twilio_server.post_webhook(web.url(INBOUND_PATH), huge).status_code == 413
    assert twilio_server.post_webhook(web.url(INBOUND_PATH), {**params, "From": ""}).status_code == 400
    assert consent(p, "c2")[0] == "granted"
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_messages)).scalar_one() == 0
