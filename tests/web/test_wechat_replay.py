"""Replayed WeChat pushes over real HTTP: a stale or far-future timestamp, and a genuine push's timestamp,
nonce and signature reused with another body, are refused with 403 and nothing written, in plaintext and in
safe mode, with the pairs taken kept in Redis (a Redis broker) or in the store (SQLite, PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from outreach.customers.profiles import customer_consents
from outreach.store.database import shift_clock
from outreach.store.schema import consents, conversations, events, inbound_messages, wechat_push_nonces
from tests.pipeline import Pipeline
from tests.services import free_port
from tests.web_server import WebServer
from tests.wechat_pushes import fields_xml, safe_mode, timestamp_now, url_params

TOKEN = "wechat-verify-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F6dPqCl1sAf9ZL2AwCKY6Xu"
APP_ID = "wx5823bf96d3bd56c7"
OPENID = "oWxYz_customer_0003"
# The customer unfollowed the account: their wechat consent is revoked.
REVOKED = f"id,name,wechat_openid,consent_wechat,consent_wechat_service\nw3,韩梅梅,{OPENID},no,no\n"


def event(kind: str) -> bytes:
    return fields_xml({"ToUserName": "gh_bank", "FromUserName": OPENID, "CreateTime": timestamp_now(),
                       "MsgType": "event", "Event": kind})  # fmt: skip


def text(content: str, msg_id: str) -> bytes:
    return fields_xml({"ToUserName": "gh_bank", "FromUserName": OPENID, "CreateTime": timestamp_now(),
                       "MsgType": "text", "Content": content, "MsgId": msg_id})  # fmt: skip


def written(p: Pipeline) -> dict[str, int]:
    """What a push could have written: rows of the tables inbound messages and their effects land in."""
    with p.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (inbound_messages, events, consents, conversations)
        }


def wechat_consent(p: Pipeline) -> set[tuple[str, str]]:
    with p.engine.connect() as conn:
        return {(c["purpose"], c["status"]) for c in customer_consents(conn, "w3") if c["channel"] == "wechat"}


@pytest.fixture(params=["store", "redis"])
def nonces_in(request: pytest.FixtureRequest, pipeline: Pipeline) -> Iterator[str]:
    """Where the app keeps the pairs taken: the store (the pipeline's SQLite or PostgreSQL, in-process
    broker), or Redis when the broker is Redis (under the test's namespace, removed after it)."""
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("broker_namespace")
        pipeline.settings = replace(pipeline.settings, broker_url=redis_url, broker_namespace=namespace)
    yield request.param


def serve(p: Pipeline, **settings: Any) -> WebServer:
    p.settings = replace(p.settings, wechat_token=TOKEN, **settings)
    return WebServer(p.settings)


def post(web: WebServer, params: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(web.url("/webhooks/wechat"), params=params, data=body, timeout=10)


def test_a_push_outside_the_window_is_refused_and_changes_nothing(pipeline: Pipeline, nonces_in: str) -> None:
    p = pipeline
    p.import_csv(REVOKED)
    before = written(p)
    with serve(p) as web:
        day_old = post(web, url_params(TOKEN, timestamp_now(-timedelta(hours=24))), event("subscribe"))
        assert (day_old.status_code, day_old.text) == (403, "timestamp older than the replay window (5m)\n")
        ahead = post(web, url_params(TOKEN, timestamp_now(timedelta(minutes=6))), event("subscribe"))
        assert (ahead.status_code, ahead.text) == (403, "timestamp further ahead than the replay window (5m)\n")
        for bad in ("soon", "-60", "1.7e9", "١٧٣٢٨٣٨٤٠٠"):  # signed, but not Unix seconds in ASCII digits
            answer = post(web, url_params(TOKEN, bad), event("subscribe"))
            assert (answer.status_code, answer.text) == (403, "timestamp is not a number of seconds\n"), bad
        assert written(p) == before and wechat_consent(p) == {("marketing", "revoked"), ("service", "revoked")}
        # Inside the window, both ways (WeChat's clock a little behind or ahead of ours), pushes are taken.
        assert post(web, url_params(TOKEN, timestamp_now(-timedelta(minutes=4))), text("你好", "31")).text == "success"
        assert post(web, url_params(TOKEN, timestamp_now(timedelta(minutes=4))), event("subscribe")).text == "success"
    assert wechat_consent(p) == {("marketing", "granted"), ("service", "granted")}


def test_a_genuine_signature_reused_with_another_body_is_refused(pipeline: Pipeline, nonces_in: str) -> None:
    p = pipeline
    p.import_csv(REVOKED)
    with serve(p) as web:
        genuine, question = url_params(TOKEN), text("请问周六营业吗", "41")
        assert post(web, genuine, question).text == "success"
        before = written(p)
        # Someone who saw that request on the wire signs a follow with its query string.
        replayed = post(web, genuine, event("subscribe"))
        assert (replayed.status_code, replayed.text) == (
            403,
            "replayed: this timestamp and nonce already came with another request\n",
        )
        # A server-verification URL signs the same way: once WeChat has used it, it signs nothing else.
        verification = url_params(TOKEN, echostr="7713450098")
        assert requests.get(web.url("/webhooks/wechat"), params=verification, timeout=10).text == "7713450098"
        assert (
            post(web, {k: v for k, v in verification.items() if k != "echostr"}, event("subscribe")).status_code == 403
        )
        assert written(p) == before
        # WeChat's redelivery of the same push (same query string, same body) is acknowledged, not taken twice.
        assert post(web, genuine, question).text == "success"
        assert requests.get(web.url("/webhooks/wechat"), params=verification, timeout=10).text == "7713450098"
        assert written(p) == before
    assert wechat_consent(p) == {("marketing", "revoked"), ("service", "revoked")}
    with p.engine.connect() as conn:
        assert conn.execute(sa.select(inbound_messages.c.body)).scalars().all() == ["请问周六营业吗"]


def test_a_replayed_follow_after_the_unfollow_changes_nothing(pipeline: Pipeline, nonces_in: str) -> None:
    """The whole request replayed, body and all, inside the window: acknowledged as a redelivery, and the
    consent stays as the customer's last real push left it."""
    p = pipeline
    p.import_csv(REVOKED)
    with serve(p) as web:
        follow = (url_params(TOKEN), event("subscribe"))
        assert post(web, *follow).text == "success"
        assert post(web, url_params(TOKEN), event("unsubscribe")).text == "success"
        before = written(p)
        assert post(web, *follow).text == "success"
        assert written(p) == before
    assert wechat_consent(p) == {("marketing", "revoked"), ("service", "revoked")}


def test_safe_mode_holds_encrypted_pushes_to_the_same_window_and_nonce_rule(pipeline: Pipeline, nonces_in: str) -> None:
    p = pipeline
    p.import_csv(REVOKED)
    with serve(p, wechat_aes_key=AES_KEY, wechat_app_id=APP_ID) as web:
        before = written(p)
        day_old = safe_mode(TOKEN, AES_KEY, APP_ID, event("subscribe"), timestamp_now(-timedelta(hours=24)))
        assert post(web, *day_old).status_code == 403
        ahead = safe_mode(TOKEN, AES_KEY, APP_ID, event("subscribe"), timestamp_now(timedelta(minutes=6)))
        assert post(web, *ahead).status_code == 403
        assert written(p) == before
        message = text("信用卡账单有误", "51")
        params, body = safe_mode(TOKEN, AES_KEY, APP_ID, message)
        assert post(web, params, body).text == "success"
        before = written(p)
        # A captured query string on another encrypted body: its msg_signature does not match.
        _, other_body = safe_mode(TOKEN, AES_KEY, APP_ID, event("subscribe"))
        assert post(web, params, other_body).status_code == 403
        # Another message under the same timestamp and nonce, even with both signatures valid (only the
        # token's holder could make them): refused by the nonce rule.
        same_pair = safe_mode(TOKEN, AES_KEY, APP_ID, event("subscribe"), params["timestamp"], params["nonce"])
        answer = post(web, *same_pair)
        assert (answer.status_code, answer.text) == (
            403,
            "replayed: this timestamp and nonce already came with another request\n",
        )
        # The same request again is WeChat's redelivery (even re-encrypted): acknowledged, not taken twice.
        assert post(web, params, body).text == "success"
        again = safe_mode(TOKEN, AES_KEY, APP_ID, message, params["timestamp"], params["nonce"])
        assert post(web, *again).text == "success"
        assert written(p) == before
    assert wechat_consent(p) == {("marketing", "revoked"), ("service", "revoked")}


def test_a_push_that_failed_is_taken_when_wechat_sends_it_again(pipeline: Pipeline, nonces_in: str) -> None:
    """Its claim is released when acting on it fails, so WeChat's retry with the same nonce is not lost."""
    p = pipeline
    p.import_csv(REVOKED)
    follow = (url_params(TOKEN), event("subscribe"))
    with serve(p) as web:
        with p.engine.begin() as conn:  # the store fails under the push: its consents table is gone
            conn.execute(sa.text("ALTER TABLE consents RENAME TO consents_away"))
        assert post(web, *follow).status_code == 500
        with p.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE consents_away RENAME TO consents"))
        assert post(web, *follow).text == "success"
    assert wechat_consent(p) == {("marketing", "granted"), ("service", "granted")}


def test_redis_keeps_each_pair_under_the_namespace_until_it_leaves_the_window(
    pipeline: Pipeline, redis_url: str, broker_namespace: str
) -> None:
    import redis

    p = pipeline
    with serve(p, broker_url=redis_url, broker_namespace=broker_namespace) as web:
        # WeChat's clock 4 minutes ahead: the pair could pass the check for 9 minutes, so it is kept that long.
        ahead = url_params(TOKEN, timestamp_now(timedelta(minutes=4)))
        assert post(web, ahead, text("早上好", "61")).text == "success"
    client = redis.Redis.from_url(redis_url)
    [key] = client.keys(f"{broker_namespace}:wechat:push:*")
    assert key.decode() == f"{broker_namespace}:wechat:push:{ahead['timestamp']}:{ahead['nonce']}"
    assert 8 * 60 < client.ttl(key) <= 9 * 60 + 2
    client.close()


def test_the_store_deletes_pairs_that_left_the_window(pipeline: Pipeline, clock: None) -> None:
    p = pipeline
    with serve(p) as web:
        first = url_params(TOKEN)
        assert post(web, first, text("早上好", "61")).text == "success"
        with p.engine.connect() as conn:
            assert conn.execute(sa.select(wechat_push_nonces.c.nonce)).scalars().all() == [first["nonce"]]
        # Ten minutes on (the engine's clock), the pair is out of the window: refused as stale, no longer
        # needed, and cleared away by the next push taken.
        shift_clock(timedelta(minutes=10))
        assert post(web, first, text("早上好", "61")).status_code == 403
        second = url_params(TOKEN)
        assert post(web, second, text("中午好", "62")).text == "success"
        with p.engine.connect() as conn:
            assert conn.execute(sa.select(wechat_push_nonces.c.nonce)).scalars().all() == [second["nonce"]]


def test_the_window_is_a_setting(pipeline: Pipeline) -> None:
    p = pipeline
    with serve(p, wechat_replay_window="30m") as web:
        assert post(web, url_params(TOKEN, timestamp_now(-timedelta(minutes=20))), text("x", "71")).text == "success"
        answer = post(web, url_params(TOKEN, timestamp_now(-timedelta(minutes=31))), text("y", "72"))
        assert (answer.status_code, answer.text) == (403, "timestamp older than the replay window (30m)\n")


def test_plaintext_mode_at_a_public_url_is_warned_of_at_start(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    p = pipeline
    public = replace(p.settings, wechat_token=TOKEN, public_url="https://wechat.bank.example")
    caplog.set_level(logging.WARNING, logger="outreach.web.app")
    with WebServer(public, listen=("127.0.0.1", free_port())) as web:
        assert requests.get(web.url("/healthz"), timeout=10).text == "ok"
    [warning] = [r for r in caplog.records if r.name == "outreach.web.app"]
    assert warning.levelno == logging.WARNING
    assert "https://wechat.bank.example/webhooks/wechat are taken in plaintext mode" in warning.getMessage()
    assert "OUTREACH_WECHAT_AES_KEY" in warning.getMessage() and TOKEN not in warning.getMessage()
    caplog.clear()
    # Safe mode, or a server only this machine reaches: nothing to warn of.
    for settings in (
        replace(public, wechat_aes_key=AES_KEY, wechat_app_id=APP_ID),
        replace(p.settings, wechat_token=TOKEN),
    ):
        with WebServer(settings, listen=("127.0.0.1", free_port())):
            pass
    assert [r for r in caplog.records if r.name == "outreach.web.app"] == []
