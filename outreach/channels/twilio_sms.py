"""SMS (and WhatsApp, with `whatsapp:` addresses) through Twilio's Messages API, with the `twilio` package's
async client.

Twilio's errors are mapped to send results here and nowhere else:

* address unusable (21211 invalid 'To', 21614 not a mobile number) -> permanent, `address_invalid`
* 21610 recipient replied STOP -> permanent, `recipient_opted_out`
* HTTP 429 / 20429, queue full (21611, 30001), any 5xx, timeouts, refused or dropped connections -> transient
* any other 4xx (wrong credentials 20003, 21408 region not enabled, 21612 To/From combination, ...) -> permanent

The error code is Twilio's own when it gave one; an answer without a Twilio error body (a gateway's 502 page)
is `http_<status>`, and a failure to talk to Twilio at all `connect`, `timeout`, `tls` or `disconnected`
(outreach.channels.transport_errors).

A timeout after the request went out is the `unknown` state: Twilio may have created the message (there is no
idempotency key). It is reported as transient with a text that says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from outreach.channels.base import NO_HOOKS, OutgoingMessage, SendHooks, SendResult
from outreach.channels.transport_errors import TIMEOUT, classify, http_status_code
from outreach.core.errors import (
    AddressInvalid,
    ConsentRevoked,
    InputError,
    PermanentError,
    Problem,
    TransientError,
    WindowClosed,
)
from outreach.core.settings import Settings, mask_secrets

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"

# The 'To' address itself cannot receive SMS: mark it invalid on the profile.
ADDRESS_INVALID_CODES = frozenset({21211, 21614})
# The recipient replied STOP to this sender: their SMS consent is gone (until they send START).
OPTED_OUT_CODES = frozenset({21610})
# WhatsApp: a free-form message outside the 24 hours after the customer's last message.
WINDOW_CLOSED_CODES = frozenset({63016})
# Rate limits and full queues: the same request can succeed later.
TRANSIENT_CODES = frozenset({20429, 21611, 30001})

# Status callbacks (`MessageStatus`): the values that settle a ledger row, as the ledger's status names; the
# others (queued, accepted, sending, scheduled, ...) say nothing the ledger does not know.
REPORT_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",  # WhatsApp: read implies delivered
    "undelivered": "undelivered",
    "failed": "failed",
}
# Error codes of a failed / undelivered report: the recipient blocked us (21610), or the number cannot
# receive messages (invalid, unknown handset, landline, not mobile).
REPORT_OPTED_OUT_CODES = frozenset({"21610"})
REPORT_ADDRESS_INVALID_CODES = frozenset({"21211", "21614", "30005", "30006"})


@dataclass(frozen=True)
class ReportVerdict:
    """What one Twilio status callback means for the ledger and the profile."""

    status: str | None  # the ledger status it settles; None when it says nothing new
    recipient_opted_out: bool = False
    address_invalid: bool = False


def read_status_report(message_status: str, error_code: str | None) -> ReportVerdict:
    """Twilio's `MessageStatus` and `ErrorCode` of a status callback, in the ledger's terms."""
    status = REPORT_STATUSES.get(message_status.lower())
    failed = status in ("undelivered", "failed") and bool(error_code)
    return ReportVerdict(
        status,
        recipient_opted_out=failed and error_code in REPORT_OPTED_OUT_CODES,
        address_invalid=failed and error_code in REPORT_ADDRESS_INVALID_CODES,
    )


class TwilioSmsProvider:
    """Sends SMS through Twilio, up to `send_concurrency` requests in flight; one aiohttp session per batch."""

    name = "twilio"

    def __init__(self, settings: Settings, channel: str = "sms") -> None:
        sender_setting = ("OUTREACH_WHATSAPP_FROM", settings.whatsapp_from) if channel == "whatsapp" else (
            "OUTREACH_SMS_FROM", settings.sms_from
        )  # fmt: skip
        problems = [
            Problem(env, None, None, f"not set: needed to send {channel} through Twilio")
            for env, value in (
                ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                sender_setting,
            )
            if not value
        ]
        if problems:
            raise InputError(problems)
        assert settings.twilio_account_sid and settings.twilio_auth_token and sender_setting[1]
        # WhatsApp goes through the same Messages API with `whatsapp:` addresses.
        self._prefix = "whatsapp:" if channel == "whatsapp" else ""
        self._settings = settings
        self._account_sid: str = settings.twilio_account_sid
        self._auth_token: str = settings.twilio_auth_token
        self._api_base = settings.twilio_api_base.rstrip("/")
        self._timeout = settings.twilio_timeout
        self._concurrency = max(1, settings.send_concurrency)
        self._status_callback = settings.public_url.rstrip("/") + STATUS_CALLBACK_PATH
        sender = sender_setting[1]
        self._sender: dict[str, str] = (
            {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": self._prefix + sender}
        )

    async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
        if not messages:
            return []
        http_client = AsyncTwilioHttpClient(timeout=self._timeout)
        try:
            client = self._client(http_client)
            semaphore = asyncio.Semaphore(self._concurrency)

            async def send_one(message: OutgoingMessage) -> SendResult | None:
                async with semaphore:
                    if not await hooks.before(message):
                        return None
                    result = await self._send(client, message)
                    hooks.after(result)  # before the next message may take this one's place
                    return result

            return [r for r in await asyncio.gather(*(send_one(m) for m in messages)) if r is not None]
        finally:
            await http_client.close()

    def _client(self, http_client: AsyncTwilioHttpClient) -> Any:
        client = Client(self._account_sid, self._auth_token, http_client=http_client)
        client.api.base_url = self._api_base
        if self._api_base != DEFAULT_API_BASE:
            # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host of a non-Twilio base URL.
            client.edge = None
            client.region = None
        return client

    async def _send(self, client: Any, message: OutgoingMessage) -> SendResult:
        try:
            # AsyncTwilioHttpClient does not apply its own `timeout` to requests (twilio 9.13 passes None to
            # aiohttp, which means no limit), so the limit is enforced here.
            async with asyncio.timeout(self._timeout):
                created = await client.messages.create_async(
                    to=self._prefix + message.to,
                    body=message.body,
                    # Our row id rides in the callback URL, so a report that arrives before the send is
                    # recorded (or after a retry changed the sid) still finds its row.
                    status_callback=f"{self._status_callback}?d={message.delivery_id}",
                    **self._sender,
                )
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._api_error(message, exc)
        except TimeoutError:
            return SendResult.failed(
                message,
                TransientError(
                    f"no answer from Twilio within {self._timeout:g}s (the message may have been sent)", TIMEOUT
                ),
            )
        except (aiohttp.ClientError, OSError) as exc:
            failure = classify(exc, "Twilio", timeout=self._timeout)
            if failure is not None:
                return SendResult.failed(message, TransientError(self._mask(failure.description), failure.code))
            return SendResult.failed(
                message, TransientError(self._mask(f"cannot reach Twilio: {type(exc).__name__}: {exc}"))
            )
        except Exception as exc:  # never let one message lose the results of the whole batch
            log.exception("unexpected error sending delivery %s through Twilio", message.delivery_id)
            return SendResult.failed(
                message, TransientError(self._mask(f"unexpected error: {type(exc).__name__}: {exc}"))
            )
        sid = getattr(created, "sid", None)
        return SendResult.sent(message, str(sid) if sid else None)

    def _api_error(self, message: OutgoingMessage, exc: TwilioRestException | TwilioServiceException) -> SendResult:
        status = int(exc.status)
        code = int(exc.code) if exc.code is not None else None
        # str(TwilioRestException) adds terminal colours when stderr is a TTY: build the text from its fields.
        detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        if code is None or code == status:
            # No Twilio error body (the twilio package then reports the HTTP status as the code): a gateway or
            # proxy page, recorded as http_<status> rather than passed off as a Twilio error code.
            text = self._mask(f"Twilio HTTP {status} without a Twilio error (a gateway answered): {detail}")
            code, code_text = None, http_status_code(status)
        else:
            text = self._mask(f"Twilio HTTP {status} error {code}: {detail}")
            code_text = str(code)
        if code in WINDOW_CLOSED_CODES:
            return SendResult.failed(message, WindowClosed("window_closed: " + text, code_text))
        if code in OPTED_OUT_CODES:
            return SendResult.failed(message, ConsentRevoked(text, code_text))
        if code in ADDRESS_INVALID_CODES:
            return SendResult.failed(message, AddressInvalid(text, code_text))
        if status == 429 or status >= 500 or code in TRANSIENT_CODES:
            return SendResult.failed(message, TransientError(text, code_text))
        return SendResult.failed(message, PermanentError(text, code_text))

    def _mask(self, text: str) -> str:
        return mask_secrets(text, self._settings)


def make_twilio_provider(settings: Settings) -> TwilioSmsProvider:
    return TwilioSmsProvider(settings)
