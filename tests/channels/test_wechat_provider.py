"""The WeChat provider, run for real (aiohttp over HTTP) against the loopback WeChat API in tests/wechat_server.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from outreach.channels import check_providers, make_provider
from outreach.channels.base import Outcome, OutgoingMessage, SendResult
from outreach.channels.outbox import OutboxProvider
from outreach.channels.wechat import TokenCache, WeChatProvider, is_window_closed
from outreach.core.errors import InputError
from outreach.core.settings import Settings, load_settings
from tests.services import free_port
from tests.wechat_server import SEND_PATH, TOKEN_PATH, WeChatServer, new_openid


@pytest.fixture
def wechat() -> Iterator[WeChatServer]:
    with WeChatServer() as server:
        yield server


def settings_for(server: WeChatServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "wechat_app_id": server.app_id,
        "wechat_app_secret": server.app_secret,
        "wechat_api_base": server.base_url + "/",
        "wechat_timeout": 5.0,
        "send_concurrency": 4,
    }
    values.update(overrides)
    return Settings(**values)


def message(delivery_id: int, openid: str, body: str = "您好,您的信用卡账单已出。") -> OutgoingMessage:
    return OutgoingMessage(delivery_id, f"c{delivery_id}", "wechat", to=openid, body=body)


def send(settings: Settings, *messages: OutgoingMessage) -> dict[int, SendResult]:
    results = asyncio.run(WeChatProvider(settings).send_many(messages))
    assert len(results) == len(messages)
    return {r.delivery_id: r for r in results}


def test_batch_is_sent_once_each_as_utf8_json_with_one_token(wechat: WeChatServer) -> None:
    openids = [new_openid() for _ in range(5)]
    bodies = [f"{i}号客户您好,感谢您的反馈 — «café» 😀" for i in range(5)]
    pairs = list(enumerate(zip(openids, bodies, strict=True), 1))
    results = send(settings_for(wechat), *(message(i, openid, body) for i, (openid, body) in pairs))

    for i, (openid, body) in pairs:
        assert wechat.sent_to(openid) == [{"touser": openid, "msgtype": "text", "content": body}]
        assert results[i] == SendResult(i, Outcome.SENT, provider_id=None)
    [token_request] = wechat.recorded(TOKEN_PATH)
    assert token_request.method == "GET"
    credentials = {"appid": wechat.app_id, "secret": wechat.app_secret}
    assert token_request.query == {"grant_type": "client_credential", **credentials}
    [token] = wechat.tokens_issued()
    sends = wechat.recorded(SEND_PATH)
    assert len(sends) == 5 and all(r.method == "POST" and r.query == {"access_token": token} for r in sends)
    assert all(r.errcode == 0 for r in sends)


def test_token_is_cached_across_batches_providers_and_threads(wechat: WeChatServer) -> None:
    settings = settings_for(wechat)
    wechat.token_delay = 0.3  # three batches on three threads (three event loops) all start without a token
    results: list[SendResult] = []

    def batch(first: int) -> None:
        messages = [message(first + i, new_openid()) for i in range(4)]
        results.extend(asyncio.run(WeChatProvider(settings).send_many(messages)))

    threads = [threading.Thread(target=batch, args=(n * 10,)) for n in range(1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(3):
        assert send(settings, message(n, new_openid()))[n].outcome is Outcome.SENT

    assert [r.outcome for r in results] == [Outcome.SENT] * 12
    assert len(wechat.tokens_issued()) == 1 and len(wechat.recorded(TOKEN_PATH)) == 1
    assert len(wechat.accepted()) == 15


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("expires_in", "refresh_after"), [(7200, 6900), (100, 90)])
def test_token_is_fetched_again_before_it_expires(wechat: WeChatServer, expires_in: int, refresh_after: float) -> None:
    """On the token cache's own (injected) clock: a token is used until REFRESH_MARGIN (300 s), or a tenth of
    its life if that is shorter, before it expires, and fetched again from that moment on; never used expired.
    Fails if the refresh comes a moment early (a second token at `refresh_after - 0.1`) or late (still the
    first token at `refresh_after`)."""
    wechat.expires_in = expires_in
    clock = FakeClock()
    provider = WeChatProvider(settings_for(wechat), tokens=TokenCache(clock))

    def sent() -> Outcome:
        [result] = asyncio.run(provider.send_many([message(1, new_openid())]))
        return result.outcome

    assert sent() is Outcome.SENT
    clock.now += refresh_after - 0.1
    assert sent() is Outcome.SENT
    clock.now += 0.1
    assert sent() is Outcome.SENT

    first, second = wechat.tokens_issued()
    assert [(r.query["access_token"], r.errcode) for r in wechat.recorded(SEND_PATH)] == [
        (first, 0),
        (first, 0),
        (second, 0),
    ]


@pytest.mark.parametrize("errcode", [42001, 40001])
def test_refused_token_is_replaced_and_the_send_retried_once(wechat: WeChatServer, errcode: int) -> None:
    settings = settings_for(wechat)
    send(settings, message(1, new_openid()))
    openid = new_openid()
    if errcode == 42001:
        wechat.expire_tokens()  # the cached token has expired at WeChat before we expected it to
    else:
        wechat.fail_next(1, 40001)  # "invalid credential, access_token is invalid or not latest"

    results = send(settings, message(2, openid, "第二条"))

    assert results[2].outcome is Outcome.SENT
    assert [m["content"] for m in wechat.sent_to(openid)] == ["第二条"]
    first, second = wechat.tokens_issued()
    assert [(r.query["access_token"], r.errcode) for r in wechat.recorded(SEND_PATH)[1:]] == [
        (first, errcode),
        (second, 0),
    ]


def test_a_second_token_refusal_is_transient_after_exactly_one_retry(wechat: WeChatServer) -> None:
    wechat.fail_next(2, 42001)
    results = send(settings_for(wechat), message(1, new_openid()))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == "42001"
    assert "access_token expired" in (results[1].error or "")
    assert len(wechat.recorded(SEND_PATH)) == 2 and len(wechat.tokens_issued()) == 2
    assert wechat.accepted() == []


def test_many_sends_refused_at_once_share_one_new_token(wechat: WeChatServer) -> None:
    settings = settings_for(wechat, send_concurrency=8)
    send(settings, message(0, new_openid()))
    wechat.expire_tokens()
    wechat.gather(8)  # all eight are at WeChat with the expired token before any answer comes back

    results = send(settings, *(message(i, new_openid()) for i in range(1, 9)))

    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    assert len(wechat.tokens_issued()) == 2
    assert [r.errcode for r in wechat.recorded(SEND_PATH)[1:]].count(42001) == 8


def test_outside_the_48_hour_window_is_permanent_window_closed(wechat: WeChatServer) -> None:
    closed, open_ = new_openid(), new_openid()
    wechat.reject(closed, 45015)
    results = send(settings_for(wechat), message(1, closed), message(2, open_))

    result = results[1]
    assert result.outcome is Outcome.PERMANENT and result.error_code == "45015"
    assert (result.error or "").startswith("window_closed: ")
    assert "response out of time limit" in (result.error or "")
    assert is_window_closed(result) and not result.address_invalid and not result.recipient_opted_out
    assert not is_window_closed(results[2]) and results[2].outcome is Outcome.SENT
    assert wechat.sent_to(closed) == [] and len(wechat.recorded(SEND_PATH)) == 2  # never retried


@pytest.mark.parametrize("errcode", [45047, 45009, -1])
def test_rate_limits_quotas_and_busy_are_transient(wechat: WeChatServer, errcode: int) -> None:
    wechat.fail_next(1, errcode)
    results = send(settings_for(wechat, send_concurrency=1), message(1, new_openid()), message(2, new_openid()))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == str(errcode)
    assert not is_window_closed(results[1])
    assert results[2].outcome is Outcome.SENT and len(wechat.accepted()) == 1


def test_gateway_errors_are_transient(wechat: WeChatServer) -> None:
    settings = settings_for(wechat)
    send(settings, message(0, new_openid()))
    wechat.fail_next_http(1, 502)
    results = send(settings, message(1, new_openid()))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == "http_502"


def test_invalid_openid_and_unfollowed_account_are_permanent(wechat: WeChatServer) -> None:
    unfollowed = new_openid()
    wechat.reject(unfollowed, 43004)
    results = send(settings_for(wechat), message(1, "not-an-openid"), message(2, unfollowed))

    assert results[1].outcome is Outcome.PERMANENT and results[1].error_code == "40003"
    assert results[1].address_invalid and not results[1].recipient_opted_out
    assert results[2].outcome is Outcome.PERMANENT and results[2].error_code == "43004"
    assert results[2].recipient_opted_out and not results[2].address_invalid
    assert wechat.accepted() == []


@pytest.mark.parametrize(("field", "errcode"), [("wechat_app_secret", 40125), ("wechat_app_id", 40013)])
def test_bad_credentials_fail_the_batch_permanently_without_leaking_the_secret(
    wechat: WeChatServer, field: str, errcode: int
) -> None:
    settings = settings_for(wechat, **{field: "wx0000000000000000" if field == "wechat_app_id" else "f" * 32})
    results = send(settings, *(message(i, new_openid()) for i in range(1, 6)))

    for result in results.values():
        assert result.outcome is Outcome.PERMANENT and result.error_code == str(errcode)
        assert (result.error or "").startswith("configuration: ")
        assert "f" * 32 not in (result.error or "") and wechat.app_secret not in (result.error or "")
    assert len(wechat.recorded(TOKEN_PATH)) == 1 and wechat.recorded(SEND_PATH) == []


def test_token_endpoint_busy_or_unreachable_is_transient_and_masked(wechat: WeChatServer) -> None:
    wechat.fail_next(1, -1, TOKEN_PATH)
    [busy] = send(settings_for(wechat), message(1, new_openid())).values()
    assert busy.outcome is Outcome.TRANSIENT and busy.error_code == "-1"

    closed = settings_for(wechat, wechat_api_base=f"http://127.0.0.1:{free_port()}")
    [refused] = send(closed, message(2, new_openid())).values()
    assert refused.outcome is Outcome.TRANSIENT and refused.error == "connection refused by WeChat (token)"
    assert wechat.app_secret not in (refused.error or "")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `check` until it holds; the deadline only stops the waiting (it measures nothing)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_slow_send_is_transient_and_may_have_been_sent(wechat: WeChatServer) -> None:
    """The client gives up on its own 0.5 s timeout: the server would hold the answer for 30 s and sees the
    client hang up before any answer went out. Without the timeout the answer would come and the send be
    SENT (and not abandoned); no clock is read to tell."""
    settings = settings_for(wechat, wechat_timeout=0.5)
    send(settings, message(0, new_openid()))
    wechat.delay = 30.0
    openid = new_openid()
    results = send(settings, message(1, openid))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == "timeout"
    assert "no answer from WeChat (send) within 0.5s" in (results[1].error or "")
    assert "may have been sent" in (results[1].error or "")
    [_, late] = wechat.recorded(SEND_PATH)
    wait_until(lambda: late.abandoned, "the server to see the client hang up")
    assert len(wechat.sent_to(openid)) == 1  # WeChat took it; only the answer was late


def test_a_slow_token_endpoint_is_transient_and_nothing_is_sent(wechat: WeChatServer) -> None:
    """As above for the token request: the client hangs up on it after 0.5 s (the server would take 30 s),
    and with no token nothing is sent."""
    wechat.token_delay = 30.0
    results = send(settings_for(wechat, wechat_timeout=0.5), message(1, new_openid()))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == "timeout"
    assert "no answer from WeChat (token) within 0.5s" in (results[1].error or "")
    [token_request] = wechat.recorded(TOKEN_PATH)
    wait_until(lambda: token_request.abandoned, "the server to see the client hang up")
    assert wechat.recorded(SEND_PATH) == []


def test_settings_and_provider_choice(tmp_path: Path) -> None:
    env = {
        "OUTREACH_CONFIG": str(tmp_path / "none.toml"),
        "OUTREACH_WECHAT_APP_ID": "wx1234567890abcdef",
        "OUTREACH_WECHAT_APP_SECRET": "s3cr3t-app-secret",
        "OUTREACH_WECHAT_TOKEN": "verify-token",
    }
    settings = load_settings(env)
    assert settings.wechat_api_base == "https://api.weixin.qq.com"
    assert settings.masked()["wechat_app_secret"] == "***" and settings.masked()["wechat_token"] == "***"
    assert isinstance(make_provider("wechat", settings), WeChatProvider)
    assert isinstance(make_provider("wechat", Settings(outbox_dir=tmp_path)), OutboxProvider)
    with pytest.raises(InputError, match="OUTREACH_WECHAT_APP_SECRET"):
        check_providers(Settings(wechat_app_id="wx1234567890abcdef"))
    config = tmp_path / "outreach.toml"
    config.write_text('wechat_app_secret = "s3cr3t-app-secret"\n', encoding="utf-8")
    with pytest.raises(InputError, match="secret"):
        load_settings({"OUTREACH_CONFIG": str(config)})
