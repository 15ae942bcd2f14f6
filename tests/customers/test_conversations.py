"""Conversations on the social channels, end to end: a complaint on WeChat or WhatsApp reaches `outreach serve`,
is filed on the profile, gets the trigger campaign's auto-reply in the same thread once (however often the
platform redelivers it), is tagged, is escalated by email when no operator answers in time, and an
operator's reply reaches the customer and answers the conversation."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from outreach.customers.conversations import Filter, list_conversations
from outreach.customers.profiles import customer_consents, get_customer, timeline
from outreach.inbound.escalation import escalate_due
from outreach.inbound.operator_reply import send_reply
from outreach.inbound.responses import InboundMessage, file_inbound
from outreach.inbound.triggers import answer_inbound, answer_pending, matching
from outreach.store.database import shift_clock, utcnow
from outreach.store.schema import conversations, customers, inbound_messages
from outreach.web.twilio_hooks import INBOUND_PATH
from tests.delivery.test_failures_cli import cli, run
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from tests.web_server import WebServer
from tests.wechat_pushes import url_params
from tests.wechat_server import WeChatServer, new_openid

TOKEN = "wechat-verify-token"
OPENID = new_openid()
SERVICE_DESK = "service-desk@bank.example"

COMPLAINTS = """
    id: complaint-ack
    name: Acknowledge complaints at once
    purpose: service
    trigger:
      inbound:
        channels: [wechat, whatsapp, sms]
        match: "投诉|complain"
    tag: complaint
    steps:
      - id: ack
        channel: reply
        content:
          wechat: "{{ name | default('') }}您好,已收到您的反馈,客服将在2小时内联系您。"
          whatsapp: "Hello{{ ' ' ~ name if name is defined }}, we got your message and will call you in 2 hours."
          sms: "{{ name | default('') }}您好,已收到您的反馈。"
"""


@pytest.fixture
def wechat() -> Iterator[WeChatServer]:
    with WeChatServer() as server:
        yield server


@pytest.fixture
def pipeline_overrides(wechat: WeChatServer) -> dict[str, Any]:
    return {
        "whatsapp_from": "+15005550007",
        "wechat_app_id": wechat.app_id,
        "wechat_app_secret": wechat.app_secret,
        "wechat_api_base": wechat.base_url + "/",
        "wechat_token": TOKEN,
        "service_email": SERVICE_DESK,
        "escalate_after": "2h",
    }


@pytest.fixture
def desk(pipeline: Pipeline) -> Iterator[WebServer]:
    """`outreach serve` with the complaint trigger in its campaign folder, answering through the workers."""
    folder = pipeline.settings.campaigns_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "complaint-ack.yaml").write_text(textwrap.dedent(COMPLAINTS).lstrip(), encoding="utf-8")
    pipeline.handle.start_worker(2)
    with WebServer(pipeline.settings, pipeline.handle.transport) as server:
        yield server


def wechat_text(web: WebServer, openid: str, text: str, msg_id: str) -> requests.Response:
    params = url_params(TOKEN)  # a current timestamp and a new nonce, as WeChat signs each push
    fields = {"ToUserName": "gh_bank", "FromUserName": openid, "CreateTime": "1732838460", "MsgType": "text",
              "Content": text, "MsgId": msg_id}  # fmt: skip
    body = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"
    return requests.post(web.url("/webhooks/wechat"), params=params, data=body.encode(), timeout=10)


def kinds(p: Pipeline, customer_id: str) -> list[str]:
    with p.engine.connect() as conn:
        return [e["kind"] for e in timeline(conn, customer_id)]


def the_conversation(p: Pipeline, customer_id: str) -> dict[str, Any]:
    with p.engine.connect() as conn:
        [found] = list_conversations(conn, Filter(customer_id=customer_id), utcnow())
    return found


def test_wechat_complaint_is_acknowledged_once_tagged_escalated_and_answered(
    pipeline: Pipeline, desk: WebServer, wechat: WeChatServer, smtp_server: SmtpServer, clock: None
) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid,email,consent_email\nw1,王芳,{OPENID},wang@example.cn,no\n")
    for _ in range(3):  # WeChat pushes again when it thinks we did not answer within 5 s
        answer = wechat_text(desk, OPENID, "我要投诉,信用卡被多扣款", "24680135792468")
        assert (answer.status_code, answer.text) == (200, "success")
    p.deliver_queued()

    assert wechat.sent_to(OPENID) == [
        {"touser": OPENID, "msgtype": "text", "content": "王芳您好,已收到您的反馈,客服将在2小时内联系您。"}
    ]
    [ack] = p.rows(campaign_id="complaint-ack")
    assert (ack["customer_id"], ack["channel"], ack["status"], ack["step_id"]) == ("w1", "wechat", "sent", "ack")
    with p.engine.connect() as conn:
        [message] = conn.execute(sa.select(inbound_messages)).mappings().all()
        profile = get_customer(conn, "w1")
    assert ack["occurrence"] == f"inbound-{message['id']}" and message["triggers_done_at"] is not None
    assert profile is not None and profile["attributes"]["tags"] == ["complaint"]
    events = kinds(p, "w1")
    for kind in ("reply.received", "conversation.opened", "tag.added", "delivery.planned", "delivery.sent"):
        assert events.count(kind) == 1, (kind, events)

    conversation = the_conversation(p, "w1")
    assert ack["conversation_id"] == conversation["id"]
    assert (conversation["status"], conversation["tags"], conversation["messages"]) == ("open", ["complaint"], 1)
    assert conversation["waiting_s"] is not None  # the auto-reply does not answer it: an operator must

    # Nobody answers: after two hours the service desk gets the conversation by email, once.
    now = utcnow()
    assert escalate_due(p.engine, p.settings, p.handle.transport, now + timedelta(minutes=119)) == []
    shift_clock(timedelta(hours=2, minutes=5))
    [escalation] = escalate_due(p.engine, p.settings, p.handle.transport, utcnow())
    assert escalate_due(p.engine, p.settings, p.handle.transport, utcnow()) == []
    p.deliver_queued()
    [mail] = smtp_server.handler.to(SERVICE_DESK)
    text = mail.message.get_body(("plain",)).get_content()
    assert "[Escalation] complaint: 王芳 (w1) has waited 2h" in mail.message["Subject"]
    assert (
        "我要投诉,信用卡被多扣款" in text and "已收到您的反馈" in text and "outreach reply w1 --channel wechat" in text
    )
    row = p.row("w1", id=escalation)
    assert (row["status"], row["purpose"], row["address"]) == ("sent", "internal", SERVICE_DESK)
    assert the_conversation(p, "w1")["escalated_at"] is not None

    # An operator answers in the thread (the 48-hour window is open): it reaches the customer, and the
    # conversation no longer waits.
    reply_id = send_reply(p.engine, p.handle.transport, "w1", "wechat", "王女士您好,多扣款项已退回。", "agent-7")
    p.deliver_queued()
    assert [m["content"] for m in wechat.sent_to(OPENID)][-1] == "王女士您好,多扣款项已退回。"
    conversation = the_conversation(p, "w1")
    assert conversation["waiting_s"] is None and conversation["answered_at"] is not None
    assert p.row("w1", id=reply_id)["conversation_id"] == conversation["id"]
    assert escalate_due(p.engine, p.settings, p.handle.transport, utcnow() + timedelta(hours=5)) == []

    # The customer writes again: the same conversation, waiting again; it does not match the trigger.
    wechat_text(desk, OPENID, "谢谢,还有一个问题", "24680135799999")
    p.deliver_queued()
    conversation = the_conversation(p, "w1")
    assert conversation["messages"] == 2 and conversation["waiting_s"] is not None
    assert len(wechat.sent_to(OPENID)) == 2  # no second auto-reply

    listed = json.loads(run(p, "conversations", "list", "--open", "--tag", "complaint", "--json").stdout)
    assert [c["customer_id"] for c in listed["conversations"]] == ["w1"]
    shown = run(p, "conversations", "show", str(conversation["id"])).stdout
    assert "我要投诉" in shown and "operator agent-7 (sent): 王女士您好" in shown
    assert "closed" in run(p, "conversations", "close", str(conversation["id"]), "--by", "agent-7").stdout
    assert json.loads(run(p, "conversations", "list", "--open", "--json").stdout) == {"conversations": []}


def test_whatsapp_complaint_from_an_unknown_number_gets_a_provisional_profile_and_the_answer(
    pipeline: Pipeline, desk: WebServer, twilio_server: Any
) -> None:
    p = pipeline
    number = "+14155550177"
    answer = twilio_server.send_inbound(desk.url(INBOUND_PATH), f"whatsapp:{number}", "I want to COMPLAIN about fees")
    assert answer.status_code == 200 and "<Message>" not in answer.text  # answered through the ledger, not TwiML
    p.deliver_queued()
    [sent] = twilio_server.sent_to(f"whatsapp:{number}")
    assert sent["body"] == "Hello, we got your message and will call you in 2 hours."
    assert sent["from"] == "whatsapp:+15005550007"
    [row] = p.rows(campaign_id="complaint-ack")
    stranger = row["customer_id"]
    assert stranger.startswith("provisional-whatsapp-") and row["status"] == "sent"
    conversation = the_conversation(p, stranger)
    assert conversation["provisional"] and conversation["tags"] == ["complaint"]

    # a question that is not a complaint extends the conversation and gets no auto-reply
    twilio_server.send_inbound(desk.url(INBOUND_PATH), f"whatsapp:{number}", "what are your opening hours?")
    p.deliver_queued()
    assert len(twilio_server.sent_to(f"whatsapp:{number}")) == 1
    assert the_conversation(p, stranger)["messages"] == 2


def test_a_message_the_server_could_not_answer_is_answered_by_the_sweep_once(
    pipeline: Pipeline, wechat: WeChatServer, clock: None
) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid\nw1,王芳,{OPENID}\n")
    folder = p.settings.campaigns_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "complaint-ack.yaml").write_text(textwrap.dedent(COMPLAINTS).lstrip(), encoding="utf-8")
    # filed, then the server stopped before its triggers ran
    filed = file_inbound(p.engine, InboundMessage("wechat", "m-1", OPENID, "投诉:ATM吞卡"), p.settings)
    assert filed.inbound_id is not None
    loaded = [p.load(folder / "complaint-ack.yaml")]
    assert answer_pending(p.engine, loaded, p.settings, p.handle.transport, utcnow()) == 0  # too fresh
    later = utcnow() + timedelta(minutes=1)
    assert answer_pending(p.engine, loaded, p.settings, p.handle.transport, later) == 1
    assert answer_pending(p.engine, loaded, p.settings, p.handle.transport, later) == 0
    p.deliver_queued()
    assert [m["content"] for m in wechat.sent_to(OPENID)] == ["王芳您好,已收到您的反馈,客服将在2小时内联系您。"]


def test_no_escalation_without_a_service_address_or_for_untagged_conversations(pipeline: Pipeline, clock: None) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid\nw1,王芳,{OPENID}\n")
    file_inbound(p.engine, InboundMessage("wechat", "m-1", OPENID, "你好"), p.settings)
    later = utcnow() + timedelta(hours=3)
    assert escalate_due(p.engine, p.settings, None, later) == []  # open and waiting, but not a complaint
    with p.engine.begin() as conn:
        conn.execute(conversations.update().values(tags=["complaint"]))
    assert escalate_due(p.engine, replace(p.settings, service_email=None), None, later) == []
    assert len(escalate_due(p.engine, p.settings, None, later)) == 1


def test_importing_the_customer_adopts_what_they_sent_as_a_stranger(pipeline: Pipeline) -> None:
    p = pipeline
    number = "+14155550188"
    file_inbound(p.engine, InboundMessage("whatsapp", "SMa1", number, "I complain about the fees"), p.settings)
    file_inbound(p.engine, InboundMessage("sms", "SMa2", number, "STOP"), p.settings)
    with p.engine.connect() as conn:
        strangers = sorted(conn.execute(sa.select(customers.c.id)).scalars())
        waiting = conn.execute(sa.select(inbound_messages.c.body, inbound_messages.c.triggers_done_at)).all()
    # only the reply waits for the triggers (no server ran them here); an opt-out has nothing to wait for
    assert {body: done is None for body, done in waiting} == {"I complain about the fees": True, "STOP": False}
    assert [s.rsplit("-", 1)[0] for s in strangers] == ["provisional-sms", "provisional-whatsapp"]

    p.import_csv(f"id,name,phone,consent_sms\nc9,Carl,{number},yes\n")  # his WhatsApp number is his phone
    with p.engine.connect() as conn:
        assert list(conn.execute(sa.select(customers.c.id)).scalars()) == ["c9"]
        owners = set(conn.execute(sa.select(inbound_messages.c.customer_id)).scalars())
        consents = {(c["channel"], c["purpose"]): c["status"] for c in customer_consents(conn, "c9")}
    assert owners == {"c9"}
    assert consents[("sms", "marketing")] == "revoked"  # his STOP as a stranger outweighs the file's yes
    assert the_conversation(p, "c9")["messages"] == 1
    assert kinds(p, "c9").count("profile.adopted") == 2


def test_a_pattern_that_backtracks_without_end_is_given_up_not_left_to_hang_the_server(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    p = pipeline
    folder = p.settings.campaigns_dir
    folder.mkdir(parents=True, exist_ok=True)
    slow = COMPLAINTS.replace('match: "投诉|complain"', 'match: "^(a|aa)+$"')  # 2^n ways to fail on "aaaa...!"
    (folder / "slow.yaml").write_text(textwrap.dedent(slow).lstrip(), encoding="utf-8")
    han = COMPLAINTS.replace("id: complaint-ack", "id: chinese-text").replace(
        'match: "投诉|complain"',
        'match: "^\\\\p{Han}+$"',  # a `regex` class: text all in Chinese characters
    )
    (folder / "han.yaml").write_text(textwrap.dedent(han).lstrip(), encoding="utf-8")
    loaded = [p.load(folder / "slow.yaml"), p.load(folder / "han.yaml")]
    assert matching(loaded, "wechat", "a" * 60 + "!") == []  # with `re`, 2^60 steps
    assert "given up" in caplog.text
    assert [c.id for c in matching(loaded, "wechat", "投诉信用卡")] == ["chinese-text"]


def test_escalate_from_the_command_line(pipeline: Pipeline, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid\nw1,王芳,{OPENID}\n")
    file_inbound(p.engine, InboundMessage("wechat", "m-1", OPENID, "投诉:ATM吞卡"), p.settings)
    with p.engine.begin() as conn:
        conn.execute(conversations.update().values(tags=["complaint"], waiting_since=utcnow() - timedelta(hours=3)))
    unset = cli(p.folder, p.settings.database_url, "conversations", "escalate")
    assert unset.returncode == 2 and unset.stderr.startswith("OUTREACH_SERVICE_EMAIL: no service address")
    mail = {"OUTREACH_SERVICE_EMAIL": SERVICE_DESK, "OUTREACH_SMTP_URL": smtp_server.url}
    assert "1 conversations escalated" in run(p, "conversations", "escalate", **mail).stdout
    assert "0 conversations escalated" in run(p, "conversations", "escalate", **mail).stdout
    [email] = smtp_server.handler.to(SERVICE_DESK)
    assert "投诉:ATM吞卡" in email.message.get_body(("plain",)).get_content()


def test_the_tag_filter_finds_tagged_conversations_beyond_the_first_page(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid\nw1,王芳,{OPENID}\nw2,李雷,{new_openid()}\n")
    file_inbound(p.engine, InboundMessage("wechat", "m-1", OPENID, "你好"), p.settings)  # waits longest
    with p.engine.connect() as conn:
        other = conn.execute(sa.select(customers.c.wechat_openid).where(customers.c.id == "w2")).scalar_one()
    file_inbound(p.engine, InboundMessage("wechat", "m-2", other, "投诉"), p.settings)
    with p.engine.begin() as conn:
        conn.execute(conversations.update().where(conversations.c.customer_id == "w2").values(tags=["complaint"]))
        found = list_conversations(conn, Filter(tag="complaint", limit=1), utcnow())
        everyone = list_conversations(conn, Filter(limit=1), utcnow())
    assert [r["customer_id"] for r in found] == ["w2"]
    assert [r["customer_id"] for r in everyone] == ["w1"]


def test_a_trigger_with_a_segment_answers_only_the_customers_in_it(pipeline: Pipeline, wechat: WeChatServer) -> None:
    p = pipeline
    vip_openid = new_openid()
    p.import_csv(f"id,name,wechat_openid,vip\nw1,王芳,{OPENID},false\nw2,李雷,{vip_openid},true\n")
    folder = p.settings.campaigns_dir
    folder.mkdir(parents=True, exist_ok=True)
    vip_only = COMPLAINTS.replace("tag: complaint", 'tag: complaint\n    segment: "vip == True"')
    (folder / "vip.yaml").write_text(textwrap.dedent(vip_only).lstrip(), encoding="utf-8")
    loaded = [p.load(folder / "vip.yaml")]
    for msg_id, openid in (("m-1", OPENID), ("m-2", vip_openid)):
        filed = file_inbound(p.engine, InboundMessage("wechat", msg_id, openid, "我要投诉"), p.settings)
        assert filed.inbound_id is not None
        answer_inbound(p.engine, loaded, filed.inbound_id, p.settings, p.handle.transport)
    p.deliver_queued()
    assert wechat.sent_to(OPENID) == []
    assert [m["content"] for m in wechat.sent_to(vip_openid)] == ["李雷您好,已收到您的反馈,客服将在2小时内联系您。"]
