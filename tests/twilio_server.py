"""A loopback HTTP server that answers `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` as Twilio does.

Only what the real Messages API would answer: HTTP Basic auth with account sid and auth token, a form-encoded
body, 201 with a message resource on success, and Twilio's JSON error shape
`{"code", "message", "more_info", "status"}` otherwise (404 20404 for any other path; methods other than POST
are not implemented and get the stdlib's 501). The test decides which answers it gets:

    with TwilioServer() as server:
        server.reject("+15005550001", 21211)     # this number always fails with 21211 (400)
        server.fail_next(2, 20429)               # the next two requests answer 429
        server.delay = 2.0                       # every answer waits two seconds (the message is still created)
        server.gather(6)                         # answers wait until six requests are waiting together
        ...
        server.sent_to("+15005550006")           # accepted messages for that number
        server.recorded()                        # every request, with the answer it got
        server.max_in_flight                     # the most requests that were waiting for answers at once

A message is recorded as soon as it is accepted, even when its answer is delayed past the client's timeout:
that is what Twilio does (a send whose answer was lost may still have gone out). A client that hangs up
while its answer is held back gets none, and its request is marked `abandoned`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import requests
from twilio.request_validator import RequestValidator

from tests.loopback_http import Answer, LoopbackHandler, LoopbackServer

API_VERSION = "2010-04-01"
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Messages\.json$")
# E.164, optionally behind a channel prefix as Twilio accepts it ("whatsapp:+4917...").
_ADDRESS = re.compile(r"^(?:(?:whatsapp|messenger|rcs):)?\+[1-9]\d{6,14}$")
_MAX_BODY = 1600

# Error codes the server can answer with: HTTP status and Twilio's message (formatted with `to` and `from_`).
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from_} via SMS.",
    ),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}

# GSM 03.38: basic set (one septet) and extension set (escape + one septet).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body` (GSM-7: 160/153 septets, else UCS-2: 70/67 code units)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        septets = sum(2 if c in _GSM_EXTENDED else 1 for c in body)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


@dataclass
class RecordedRequest:
    """One request as the server saw it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    username: str | None
    status: int = 0
    code: int | None = None
    # The client hung up while its answer was held back (`delay`): it gave up waiting, and got no answer.
    abandoned: bool = False


@dataclass
class Behaviour:
    """What the server answers; change it from the test at any time (guarded by the server's lock)."""

    # To-number -> Twilio error code (a key of ERRORS), answered every time that number is sent to.
    rejections: dict[str, int] = field(default_factory=dict)
    # Answer the next `failures` authenticated requests with `failure_code` (20429 -> 429, 20500 -> 500, ...).
    failures: int = 0
    failure_code: int = 20429
    # Seconds to wait before answering (after the message was created, as when an answer is slow or lost);
    # the wait ends when the client hangs up.
    delay: float = 0.0


class TwilioServer(LoopbackServer[RecordedRequest]):
    """The fake Messages API on 127.0.0.1; `start()`/`stop()` or use it as a context manager.

    `messages` holds the accepted message resources, as answered (the JSON dict), plus "status_callback" from
    the request.
    """

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None, port: int = 0) -> None:
        super().__init__(_make_handler(self), "twilio-server", port)
        self.account_sid = account_sid or "AC" + uuid.uuid4().hex
        self.auth_token = auth_token or uuid.uuid4().hex
        self.behaviour = Behaviour()

    # --- configuring answers ---------------------------------------------------------------------------------

    def reject(self, to: str, code: int) -> None:
        """Answer every message to `to` with Twilio error `code` (21211, 21610, 21614, ...)."""
        if code not in ERRORS:
            raise ValueError(f"unknown Twilio error code {code}")
        with self.lock:
            self.behaviour.rejections[to] = code

    def fail_next(self, count: int, code: int = 20429) -> None:
        """Answer the next `count` authenticated requests with `code` (20429 -> HTTP 429, 20500 -> HTTP 500)."""
        if code not in ERRORS:
            raise ValueError(f"unknown Twilio error code {code}")
        with self.lock:
            self.behaviour.failures = count
            self.behaviour.failure_code = code

    @property
    def delay(self) -> float:
        return self.behaviour.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        with self.lock:
            self.behaviour.delay = seconds

    # --- reading what arrived --------------------------------------------------------------------------------

    def sent_to(self, to: str) -> list[dict[str, Any]]:
        """The accepted messages addressed to `to`."""
        with self.lock:
            return [m for m in self.messages if m["to"] == to]

    # --- calling the bank's webhooks, as Twilio does -----------------------------------------------------------

    def post_webhook(self, url: str, params: dict[str, str], *, sign: bool = True) -> requests.Response:
        """POST a form to `url` signed with this account's auth token (X-Twilio-Signature)."""
        headers = {"X-Twilio-Signature": RequestValidator(self.auth_token).compute_signature(url, params)}
        return requests.post(url, data=params, headers=headers if sign else {}, timeout=30)

    def report_status(self, sid: str, status: str, error_code: int | None = None) -> requests.Response:
        """The status callback Twilio sends for message `sid` to the StatusCallback it was created with."""
        with self.lock:
            [resource] = [m for m in self.messages if m["sid"] == sid]
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "From": resource["from"] or "",
            "To": resource["to"],
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self.post_webhook(resource["status_callback"], params)

    def send_inbound(self, url: str, from_: str, body: str, to: str = "+15005550006") -> requests.Response:
        """An incoming message from `from_`, as Twilio posts it to the number's messaging webhook."""
        sid = "SM" + uuid.uuid4().hex
        return self.post_webhook(url, inbound_params(self.account_sid, sid, from_, body, to))

    # --- answering (called from handler threads) -------------------------------------------------------------

    def _answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        match = _MESSAGES_PATH.match(request.path.split("?", 1)[0])
        if match is None:
            return _error(20404, path=request.path)
        if not self._authenticated(request, match.group("account")):
            return _error(20003)
        form = {k: v[-1] for k, v in request.form.items()}
        to = form.get("To", "")
        from_ = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        with self.lock:
            if self.behaviour.failures > 0:
                self.behaviour.failures -= 1
                return _error(self.behaviour.failure_code)
            rejection = self.behaviour.rejections.get(to)
        if not to:
            return _error(21604)
        if not from_ and not service:
            return _error(21603)
        if not body and "MediaUrl" not in form and "ContentSid" not in form:
            return _error(21602)
        if len(body) > _MAX_BODY:
            return _error(21617)
        if not _ADDRESS.match(to):
            return _error(21211, to=to)
        if rejection is not None:
            return _error(rejection, to=to, from_=from_)
        return 201, self._create(form, media=len(request.form.get("MediaUrl", [])))

    def _authenticated(self, request: RecordedRequest, path_account: str) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        request.username = user
        return user == self.account_sid == path_account and password == self.auth_token

    def _create(self, form: dict[str, str], media: int) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # With only a Messaging Service, Twilio picks the sender later and answers "accepted".
            "from": from_,
            "messaging_service_sid": service,
            "num_media": str(media),
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": form["To"],
            "uri": f"{uri}.json",
        }
        with self.lock:
            self.messages.append({**resource, "status_callback": form.get("StatusCallback")})
        return resource


def _error(code: int, *, to: str = "", from_: str = "", path: str = "") -> tuple[int, dict[str, Any]]:
    status, message = ERRORS[code]
    return status, {
        "code": code,
        "message": message.format(to=to, from_=from_, path=path),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _make_handler(server: TwilioServer) -> type[LoopbackHandler]:
    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.read_body().decode("utf-8"), keep_blank_values=True)
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                form=form,
                username=None,
            )
            status, payload = server._answer(request)
            request.status = status
            request.code = payload.get("code") if status >= 400 else None
            with server.lock:
                server.requests.append(request)
                delay = server.behaviour.delay
            answer = server.wait_to_answer(delay, self.connection)
            if answer is not Answer.SEND:
                with server.lock:
                    request.abandoned = answer is Answer.HUNG_UP
                self.close_connection = True
                return  # the client gave up, or the server is shutting down: no answer
            headers = {"Twilio-Request-Id": "RQ" + uuid.uuid4().hex}
            if status == HTTPStatus.UNAUTHORIZED:
                headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            self.reply(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    return Handler


def inbound_params(account_sid: str, sid: str, from_: str, body: str, to: str) -> dict[str, str]:
    """The form fields of Twilio's incoming-message webhook."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
