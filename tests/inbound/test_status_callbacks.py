"""Twilio delivery reports over real HTTP: `outreach serve`'s app under uvicorn, callbacks signed by the
twilio package's own RequestValidator, sent by the Twilio-like server to the StatusCallback it was given."""

from __future__ import annotations

from typing import Any

import requests
import sqlalchemy as sa

from outreach.customers.profiles import customer_consents
from outreach.store.ledger import Status
from outreach.store.schema import customers, events
from tests.pipeline import Pipeline
from tests.web_server import WebServer

CUSTOMERS = """
    id,name,phone,country,email,locale,consent_sms,consent_email
    s1,王芳,13800138001,CN,wang@example.cn,zh-CN,yes,yes
    s2,Bob,+14155550100,US,bob@example.com,en,yes,yes
    s3,Amy,+14155550101,US,amy@example.com,en,yes,yes
"""

NOTICE = """
    id: notice
    name: Card notice
    purpose: service
    steps:
      - id: tell
        channel: sms
        content:
          sms: "{{ name }}, your new card is on its way."
"""


def sent(p: Pipeline) -> dict[str, dict[str, Any]]:
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NOTICE))
    rows = {r["customer_id"]: r for r in p.rows()}
    assert all(r["status"] == Status.SENT for r in rows.values())
    return rows


def kinds(p: Pipeline, delivery_id: int) -> list[str]:
    with p.engine.connect() as conn:
        query = sa.select(events.c.kind).where(events.c.delivery_id == delivery_id).order_by(events.c.id)
        return list(conn.execute(query).scalars())


def test_delivered_moves_the_row_once_however_often_it_arrives(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    rows = sent(pipeline)
    row = rows["s1"]
    sid = row["provider_message_id"]
    assert twilio_server.report_status(sid, "sent").status_code == 200  # sent is what the ledger knows
    answer = twilio_server.report_status(sid, "delivered")
    assert answer.status_code == 200 and answer.text == "applied"
    assert twilio_server.report_status(sid, "delivered").text == "unchanged"  # delivered twice
    assert twilio_server.report_status(sid, "sent").text == "unchanged"  # a late `sent`
    after = pipeline.row("s1")
    assert after["status"] == Status.DELIVERED
    assert after["delivered_at"] is not None and after["finished_at"] is not None
    assert kinds(pipeline, row["id"]).count("delivery.delivered") == 1
    assert "delivery.sent" in kinds(pipeline, row["id"])
    # the others were not touched
    assert pipeline.row("s2")["status"] == Status.SENT


def test_undelivered_and_failed_keep_the_error_and_act_on_the_profile(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    rows = sent(pipeline)
    assert twilio_server.report_status(rows["s2"]["provider_message_id"], "undelivered", 30005).text == "applied"
    assert twilio_server.report_status(rows["s3"]["provider_message_id"], "failed", 21610).text == "applied"
    assert twilio_server.report_status(rows["s3"]["provider_message_id"], "delivered").text == "unchanged"

    s2, s3 = pipeline.row("s2"), pipeline.row("s3")
    assert (s2["status"], s2["error_code"]) == (Status.UNDELIVERED, "30005")
    assert (s3["status"], s3["error_code"]) == (Status.FAILED, "21610")
    with pipeline.engine.connect() as conn:
        flags = dict(conn.execute(sa.select(customers.c.id, customers.c.phone_invalid)).all())
        consents = {(c["channel"], c["purpose"]): (c["status"], c["source"]) for c in customer_consents(conn, "s3")}
    assert flags["s2"] == "provider error 30005"
    assert flags["s1"] is None and flags["s3"] is None
    assert consents[("sms", "marketing")] == ("revoked", "provider:recipient-opted-out")
    assert consents[("sms", "service")] == ("revoked", "provider:recipient-opted-out")


def test_a_report_before_the_send_is_recorded_still_finds_its_row(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    """The callback URL carries our row id: a `delivered` that beats the worker's own record settles the row,
    and the worker's later record does not move it back."""
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NOTICE), deliver=False)
    row = p.row("s1")
    callback = f"{web.base_url}/webhooks/twilio/status?d={row['id']}"
    answer = twilio_server.post_webhook(
        callback, {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "AccountSid": twilio_server.account_sid}
    )
    assert answer.text == "applied"
    assert p.row("s1")["status"] == Status.DELIVERED
    p.handle.start_worker(2)
    p.deliver_queued()
    after = p.row("s1")
    assert after["status"] == Status.DELIVERED  # its claim found nothing queued: not sent again
    assert twilio_server.sent_to("+8613800138001") == []
    assert len(twilio_server.sent_to("+14155550100")) == 1


def test_forged_and_bad_requests_change_nothing(pipeline: Pipeline, web: WebServer, twilio_server: Any) -> None:
    rows = sent(pipeline)
    sid = rows["s1"]["provider_message_id"]
    url = f"{web.base_url}/webhooks/twilio/status?d={rows['s1']['id']}"
    form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": twilio_server.account_sid}

    assert twilio_server.post_webhook(url, form, sign=False).status_code == 403  # no signature
    forged = requests.post(url, data=form, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, timeout=10)
    assert forged.status_code == 403
    # signed for another row: the query string is part of what is signed
    other = f"{web.base_url}/webhooks/twilio/status?d={rows['s2']['id']}"
    from twilio.request_validator import RequestValidator

    signature = RequestValidator(twilio_server.auth_token).compute_signature(other, form)
    moved = requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert moved.status_code == 403
    # signed with another account's token
    wrong = RequestValidator("0" * 32).compute_signature(url, form)
    assert requests.post(url, data=form, headers={"X-Twilio-Signature": wrong}, timeout=10).status_code == 403
    # too big: refused before it is read
    huge = {**form, "Body": "x" * (pipeline.settings.max_request_bytes + 1)}
    assert twilio_server.post_webhook(url, huge).status_code == 413
    # malformed: not a form, broken UTF-8, a field missing (but signed)
    signature = RequestValidator(twilio_server.auth_token).compute_signature(url, {})
    as_json = requests.post(
        url, json=form, headers={"X-Twilio-Signature": signature, "Content-Type": "application/json"}, timeout=10
    )
    assert as_json.status_code == 400
    broken = requests.post(
        url,
        data=b"MessageSid=%ff%fe&MessageStatus=delivered",
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert broken.status_code == 400
    assert twilio_server.post_webhook(url, {"MessageSid": sid}).status_code == 400

    assert pipeline.row("s1")["status"] == Status.SENT
    assert "delivery.delivered" not in kinds(pipeline, rows["s1"]["id"])


def test_reports_for_unknown_messages_and_untracked_statuses_are_answered_and_ignored(
    pipeline: Pipeline, web: WebServer, twilio_server: Any
) -> None:
    rows = sent(pipeline)
    url = f"{web.base_url}/webhooks/twilio/status"
    form = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered", "AccountSid": twilio_server.account_sid}
    assert twilio_server.post_webhook(url, form).text == "unmatched"
    # matched by its sid when the URL carries no row id
    known = {**form, "MessageSid": rows["s2"]["provider_message_id"], "MessageStatus": "queued"}
    assert twilio_server.post_webhook(url, known).text == "ignored"
    assert twilio_server.post_webhook(url, {**known, "MessageStatus": "delivered"}).text == "applied"
    assert pipeline.row("s2")["status"] == Status.DELIVERED
