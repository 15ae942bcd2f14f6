"""WeChat's server verification and XML pushes over real HTTP, signed as WeChat signs them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import requests
import sqlalchemy as sa

from outreach.customers.profiles import customer_consents, timeline
from outreach.store.schema import inbound_messages
from tests.pipeline import Pipeline
from tests.web_server import WebServer
from tests.wechat_pushes import url_params

TOKEN = "wechat-verify-token"
OPENID = "oWxYz_customer_0001"


def signed(web: WebServer, **extra: str) -> tuple[str, dict[str, str]]:
    """The URL and a query string signed as WeChat signs each request: a current timestamp, a new nonce."""
    return web.url("/webhooks/wechat"), url_params(TOKEN, **extra)


def push(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


def serve(pipeline: Pipeline) -> WebServer:
    pipeline.settings = replace(pipeline.settings, wechat_token=TOKEN)
    return WebServer(pipeline.settings)


def test_verification_and_forged_requests(pipeline: Pipeline) -> None:
    with serve(pipeline) as web:
        url, params = signed(web, echostr="5839204471")
        answer = requests.get(url, params=params, timeout=10)
        assert (answer.status_code, answer.text) == (200, "5839204471")
        forged = {**params, "signature": "0" * 40}
        assert requests.get(url, params=forged, timeout=10).status_code == 403
        assert requests.get(url, params={"echostr": "1"}, timeout=10).status_code == 403


def test_text_and_follow_events_land_on_the_profile_once(pipeline: Pipeline) -> None:
    p = pipeline
    p.import_csv(f"id,name,wechat_openid\nw1,王芳,{OPENID}\n")
    with serve(p) as web:
        url, params = signed(web)
        follow = push({"ToUserName": "gh_bank", "FromUserName": OPENID, "CreateTime": "1732838400",
                       "MsgType": "event", "Event": "subscribe"})  # fmt: skip
        assert requests.post(url, params=params, data=follow, timeout=10).text == "success"
        text = push({"ToUserName": "gh_bank", "FromUserName": OPENID, "CreateTime": "1732838460",
                     "MsgType": "text", "Content": "我要投诉,信用卡被多扣款", "MsgId": "24680135792468"})  # fmt: skip
        for _ in range(2):  # WeChat retries a push it thinks was not answered
            assert requests.post(url, params=signed(web)[1], data=text, timeout=10).text == "success"
        # forged, or not XML we accept: nothing changes
        _, params = signed(web)
        assert requests.post(url, params={**params, "nonce": "1"}, data=text, timeout=10).status_code == 403
        bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>'
        assert requests.post(url, params=params, data=bomb, timeout=10).status_code == 400
        assert requests.post(url, params=params, data=b"<xml><a>", timeout=10).status_code == 400
        unfollow = push(
            {"FromUserName": OPENID, "CreateTime": "1732839000", "MsgType": "event", "Event": "unsubscribe"}
        )
        assert requests.post(url, params=signed(web)[1], data=unfollow, timeout=10).text == "success"
    with p.engine.connect() as conn:
        consents = {(c["purpose"], c["status"], c["source"]) for c in customer_consents(conn, "w1")}
        kinds = [e["kind"] for e in timeline(conn, "w1")]
        stored = conn.execute(sa.select(inbound_messages.c.body, inbound_messages.c.customer_id)).all()
    assert consents == {("marketing", "revoked", "wechat:unsubscribe"), ("service", "revoked", "wechat:unsubscribe")}
    assert kinds.count("consent.granted") == 2 and kinds.count("consent.revoked") == 2
    assert stored == [("我要投诉,信用卡被多扣款", "w1")]
    assert kinds.count("reply.received") == 1


def test_wechat_push_without_token_configured_is_refused(pipeline: Any, web: WebServer) -> None:
    url = web.url("/webhooks/wechat")
    assert (
        requests.post(
            url, params={"signature": "x", "timestamp": "1", "nonce": "2"}, data=b"<xml/>", timeout=10
        ).status_code
        == 403
    )
