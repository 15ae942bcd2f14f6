"""The Twilio SMS provider, run for real (twilio's async client over HTTP) against the loopback Messages API."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from outreach.channels.base import Outcome, OutgoingMessage, SendResult
from outreach.channels.twilio_sms import TwilioSmsProvider, make_twilio_provider
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from tests.services import free_port
from tests.twilio_server import TwilioServer, num_segments

FROM = "+15005550006"
PUBLIC_URL = "https://outreach.bank.example"
CALLBACK = PUBLIC_URL + "/webhooks/twilio/status"
SID = re.compile(r"^SM[0-9a-f]{32}$")

# twilio 9.13's async client still uses aiohttp's deprecated BasicAuth; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


def settings_for(server: TwilioServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": server.account_sid,
        "twilio_auth_token": server.auth_token,
        "twilio_api_base": server.base_url,
        "sms_from": FROM,
        "public_url": PUBLIC_URL + "/",
        "twilio_timeout": 5.0,
        "send_concurrency": 4,
        "secret_key": "test-secret-key",
    }
    values.update(overrides)
    return Settings(**values)


def message(delivery_id: int, to: str, body: str = "Your card ending 1234 was used for 12.00 EUR") -> OutgoingMessage:
    return OutgoingMessage(delivery_id=delivery_id, customer_id=f"c{delivery_id}", channel="sms", to=to, body=body)


def send(settings: Settings, *messages: OutgoingMessage) -> dict[int, SendResult]:
    results = asyncio.run(TwilioSmsProvider(settings).send_many(messages))
    assert len(results) == len(messages)
    return {r.delivery_id: r for r in results}


def test_batch_is_sent_once_each_with_sender_body_and_callback(twilio: TwilioServer) -> None:
    numbers = ["+4915112345671", "+4915112345672", "+4915112345673"]
    results = send(settings_for(twilio), *(message(i, to, f"Hello {i}") for i, to in enumerate(numbers, 1)))

    for i, to in enumerate(numbers, 1):
        [received] = twilio.sent_to(to)
        assert received["from"] == FROM
        assert received["body"] == f"Hello {i}"
        assert received["status_callback"] == f"{CALLBACK}?d={i}"
        assert received["status"] == "queued"
        assert received["direction"] == "outbound-api"
        assert results[i].outcome is Outcome.SENT
        assert results[i].provider_id == received["sid"]
        assert SID.match(results[i].provider_id or "")
        assert results[i].error is None and results[i].error_code is None
    [request] = [r for r in twilio.recorded() if r.form["To"] == [numbers[0]]]
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.username == twilio.account_sid
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.form["From"] == [FROM]
    assert request.form["StatusCallback"] == [f"{CALLBACK}?d=1"]
    assert "MessagingServiceSid" not in request.form


def test_messaging_service_sid_is_sent_instead_of_from(twilio: TwilioServer) -> None:
    service = "MG" + "0" * 32
    results = send(settings_for(twilio, sms_from=service), message(1, "+4915112345671"))

    assert results[1].outcome is Outcome.SENT
    [request] = twilio.recorded()
    assert request.form["MessagingServiceSid"] == [service]
    assert "From" not in request.form
    [received] = twilio.accepted()
    assert received["messaging_service_sid"] == service
    assert received["status"] == "accepted"


def test_unicode_body_arrives_intact_and_is_segmented_as_ucs2(twilio: TwilioServer) -> None:
    body = "您的验证码是 123456,请勿泄露。回复R拒收"
    results = send(settings_for(twilio), message(1, "+8613800138000", body))

    assert results[1].outcome is Outcome.SENT
    [received] = twilio.sent_to("+8613800138000")
    assert received["body"] == body
    assert received["num_segments"] == "1"
    assert num_segments("x" * 161) == 2 and num_segments("é" * 160) == 1 and num_segments("€" * 81) == 2


def test_invalid_number_is_permanent_and_marks_the_address(twilio: TwilioServer) -> None:
    twilio.reject("+4915100000000", 21211)
    results = send(settings_for(twilio), message(1, "+4915100000000"), message(2, "not-a-number"))

    for result in results.values():
        assert result.outcome is Outcome.PERMANENT
        assert result.error_code == "21211"
        assert result.address_invalid and not result.recipient_opted_out
        assert "is not a valid phone number" in (result.error or "")
    assert twilio.accepted() == []


def test_not_a_mobile_number_marks_the_address_but_region_permission_does_not(twilio: TwilioServer) -> None:
    twilio.reject("+4930123456", 21614)
    twilio.reject("+8613800138000", 21408)
    results = send(settings_for(twilio), message(1, "+4930123456"), message(2, "+8613800138000"))

    assert results[1].outcome is Outcome.PERMANENT and results[1].address_invalid
    assert results[1].error_code == "21614"
    assert results[2].outcome is Outcome.PERMANENT and not results[2].address_invalid
    assert results[2].error_code == "21408"


def test_recipient_who_replied_stop_is_permanent_and_opted_out(twilio: TwilioServer) -> None:
    twilio.reject("+4915112345679", 21610)
    results = send(settings_for(twilio), message(1, "+4915112345679"), message(2, "+4915112345670"))

    assert results[1].outcome is Outcome.PERMANENT
    assert results[1].error_code == "21610"
    assert results[1].recipient_opted_out and not results[1].address_invalid
    assert "Attempt to send to unsubscribed recipient" in (results[1].error or "")
    assert results[2].outcome is Outcome.SENT
    assert twilio.sent_to("+4915112345679") == []
    assert len(twilio.sent_to("+4915112345670")) == 1


@pytest.mark.parametrize(("code", "status"), [(20429, 429), (20500, 500), (21611, 400)])
def test_rate_limits_server_errors_and_full_queues_are_transient(twilio: TwilioServer, code: int, status: int) -> None:
    twilio.fail_next(1, code)
    results = send(settings_for(twilio, send_concurrency=1), message(1, "+4915112345671"), message(2, "+4915112345672"))

    failed = [r for r in results.values() if r.outcome is Outcome.TRANSIENT]
    sent = [r for r in results.values() if r.outcome is Outcome.SENT]
    assert len(failed) == 1 and len(sent) == 1
    assert failed[0].error_code == str(code)
    assert f"HTTP {status}" in (failed[0].error or "")
    assert not failed[0].address_invalid and not failed[0].recipient_opted_out
    assert [r.status for r in twilio.recorded()] == [status, 201]
    assert len(twilio.accepted()) == 1


def test_transient_failure_then_retry_sends_once(twilio: TwilioServer) -> None:
    twilio.fail_next(1, 20429)
    settings = settings_for(twilio)
    first = send(settings, message(1, "+4915112345671"))
    assert first[1].outcome is Outcome.TRANSIENT
    second = send(settings, message(1, "+4915112345671"))
    assert second[1].outcome is Outcome.SENT
    assert len(twilio.sent_to("+4915112345671")) == 1


def test_wrong_credentials_are_permanent_and_never_show_the_token(twilio: TwilioServer) -> None:
    wrong_token = "f00dbabe" * 4
    results = send(settings_for(twilio, twilio_auth_token=wrong_token), message(1, "+4915112345671"))

    result = results[1]
    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == "20003"
    assert "HTTP 401" in (result.error or "") and "Authenticate" in (result.error or "")
    assert wrong_token not in repr(result)
    assert twilio.auth_token not in repr(result)
    [request] = twilio.recorded()
    assert request.status == 401 and request.username == twilio.account_sid
    assert twilio.accepted() == []


def test_refused_connection_is_transient() -> None:
    closed = free_port()  # nothing listens there
    settings = Settings(
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="secret-token-value",
        twilio_api_base=f"http://127.0.0.1:{closed}",
        sms_from=FROM,
        twilio_timeout=5.0,
    )
    results = send(settings, message(1, "+4915112345671"), message(2, "+4915112345672"))

    for result in results.values():
        assert result.outcome is Outcome.TRANSIENT
        assert result.error == "connection refused by Twilio" and result.error_code == "connect"
        assert "secret-token-value" not in (result.error or "")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `check` until it holds; the deadline only stops the waiting (it measures nothing)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_answer_slower_than_the_timeout_is_transient(twilio: TwilioServer) -> None:
    """The client gives up on its own timeout: the server would hold the answer for 30 s, far past the
    client's 0.5 s, and sees the client hang up before any answer went out. Without the timeout the answer
    would arrive and the send would be SENT (and not abandoned); no clock is read to tell."""
    twilio.delay = 30.0
    results = send(settings_for(twilio, twilio_timeout=0.5), message(1, "+4915112345671"))

    assert results[1].outcome is Outcome.TRANSIENT and results[1].error_code == "timeout"
    assert "no answer from Twilio within 0.5s" in (results[1].error or "")
    assert "may have been sent" in (results[1].error or "")
    [request] = twilio.recorded()
    wait_until(lambda: request.abandoned, "the server to see the client hang up")
    # Twilio created the message even though its answer never arrived: the `unknown` state.
    assert len(twilio.sent_to("+4915112345671")) == 1


def test_messages_are_sent_concurrently(twilio: TwilioServer) -> None:
    """Up to `send_concurrency` requests are at Twilio at once, and never more: the server holds each answer
    until six requests are waiting together (two rounds of six for twelve messages). A client sending one by
    one would never have six out; its requests would be answered only after the server gave up gathering
    (10 s, past the client's 5 s timeout) and `max_in_flight` would stay 1. (A client ignoring the limit
    mostly shows more than six waiting at once, but not always: the upper bound is a bonus, not the point.)"""
    twilio.gather(6)
    numbers = [f"+491511234{i:04d}" for i in range(12)]
    results = send(settings_for(twilio, send_concurrency=6), *(message(i, to) for i, to in enumerate(numbers)))

    assert all(r.outcome is Outcome.SENT for r in results.values())
    assert len({r.provider_id for r in results.values()}) == len(numbers)
    for to in numbers:
        assert len(twilio.sent_to(to)) == 1
    assert twilio.max_in_flight == 6


def test_empty_batch_sends_nothing(twilio: TwilioServer) -> None:
    assert asyncio.run(TwilioSmsProvider(settings_for(twilio)).send_many([])) == []
    assert twilio.recorded() == []


def test_missing_credentials_are_reported_at_construction() -> None:
    with pytest.raises(InputError) as caught:
        make_twilio_provider(Settings(twilio_account_sid="AC" + "1" * 32))
    text = str(caught.value)
    assert "TWILIO_AUTH_TOKEN" in text and "OUTREACH_SMS_FROM" in text and "TWILIO_ACCOUNT_SID" not in text


def _post(server: TwilioServer, form: dict[str, str], token: str | None = None) -> tuple[int, dict[str, Any]]:
    credentials = base64.b64encode(f"{server.account_sid}:{token or server.auth_token}".encode()).decode()
    request = urllib.request.Request(
        f"{server.base_url}/2010-04-01/Accounts/{server.account_sid}/Messages.json",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Basic {credentials}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_answers_in_twilios_wire_format(twilio: TwilioServer) -> None:
    unauthorized = {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert _post(twilio, {"To": "+4915112345671", "From": FROM, "Body": "x"}, token="wrong") == (401, unauthorized)
    status, error = _post(twilio, {"From": FROM, "Body": "x"})
    assert (status, error["code"]) == (400, 21604)
    status, error = _post(twilio, {"To": "+4915112345671", "Body": "x"})
    assert (status, error["code"]) == (400, 21603)
    status, created = _post(twilio, {"To": "+4915112345671", "From": FROM, "Body": "x" * 161})
    assert status == 201
    assert SID.match(created["sid"])
    assert created["num_segments"] == "2"
    assert created["price"] is None and created["error_code"] is None and created["date_sent"] is None
    assert created["uri"] == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages/{created['sid']}.json"
    assert created["date_created"].endswith("+0000")


def test_whatsapp_goes_through_the_same_api_with_whatsapp_addresses(twilio: TwilioServer) -> None:
    from dataclasses import replace

    from outreach.channels import check_providers, make_provider

    settings = replace(settings_for(twilio), whatsapp_from="+15005550007")
    provider = make_provider("whatsapp", settings)
    whatsapp = OutgoingMessage(delivery_id=7, customer_id="c7", channel="whatsapp", to="+4915112345677", body="Hi")
    [result] = asyncio.run(provider.send_many([whatsapp]))
    assert result.outcome is Outcome.SENT
    [received] = twilio.sent_to("whatsapp:+4915112345677")
    assert received["from"] == "whatsapp:+15005550007" and received["body"] == "Hi"
    # Twilio configured and no WhatsApp sender: a clear error (a worker refuses to start), never a silent
    # outbox that looks sent ...
    with pytest.raises(InputError, match="OUTREACH_WHATSAPP_FROM: not set: Twilio is configured"):
        make_provider("whatsapp", settings_for(twilio))
    with pytest.raises(InputError, match="OUTREACH_WHATSAPP_FROM"):
        check_providers(settings_for(twilio))
    # ... unless the outbox is what the bank asked for
    assert make_provider("whatsapp", replace(settings_for(twilio), whatsapp_from="outbox")).name == "outbox"
