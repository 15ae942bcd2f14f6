"""The requests Twilio would send, with its form fields and a valid `X-Twilio-Signature`, signed before any
clock starts: `delivered` status callbacks, callbacks for no ledger row (the warm-up), and inbound SMS."""

from __future__ import annotations

import secrets
from collections import Counter
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.http_load import Post
from bench.webhooks.seed import sid
from outreach.web.twilio_hooks import INBOUND_PATH, STATUS_PATH

OUR_NUMBER = "+14155550100"
ACCOUNT_SID = "AC" + "0" * 32
API_VERSION = "2010-04-01"
# (body, what it is read as when the customer has an open NPS question, ... when they have none)
INBOUND_BODIES = (("9", "survey", "reply"), ("ok thanks", "reply", "reply"), ("STOP", "opt_out", "opt_out"))
_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}


def sign(validator: RequestValidator, public_url: str, path: str, params: dict[str, str]) -> Post:
    signature = validator.compute_signature(public_url + path, params)
    return Post(path, urlencode(params).encode(), {**_HEADERS, "X-Twilio-Signature": signature})


def status_requests(validator: RequestValidator, public_url: str, rows: list[tuple[int, str, str]]) -> list[Post]:
    """One `delivered` callback per ledger row (id, provider sid, phone)."""
    out = []
    for row_id, message_sid, phone in rows:
        params = {
            "SmsSid": message_sid,
            "SmsStatus": "delivered",
            "MessageStatus": "delivered",
            "To": phone,
            "MessageSid": message_sid,
            "AccountSid": ACCOUNT_SID,
            "From": OUR_NUMBER,
            "ApiVersion": API_VERSION,
        }
        out.append(sign(validator, public_url, f"{STATUS_PATH}?d={row_id}", params))
    return out


def warmup_requests(validator: RequestValidator, public_url: str, count: int) -> list[Post]:
    """Callbacks for a ledger id that does not exist: they change nothing."""
    return status_requests(validator, public_url, [(0, sid("w", i), OUR_NUMBER) for i in range(count)])


def inbound_requests(
    validator: RequestValidator, public_url: str, phones: list[str]
) -> tuple[list[Post], dict[str, int]]:
    """One message per sender (the even ones have an open NPS question), and the kinds they must be filed as."""
    out = []
    expected: Counter[str] = Counter()
    for i, phone in enumerate(phones):
        body, if_asked, otherwise = INBOUND_BODIES[i % len(INBOUND_BODIES)]
        expected[if_asked if i % 2 == 0 else otherwise] += 1
        message_sid = "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": message_sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": message_sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "CN",
            "To": OUR_NUMBER,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": message_sid,
            "AccountSid": ACCOUNT_SID,
            "From": phone,
            "ApiVersion": API_VERSION,
        }
        out.append(sign(validator, public_url, INBOUND_PATH, params))
    return out, dict(expected)
