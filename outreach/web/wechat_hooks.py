"""WeChat Official Account server: `GET /webhooks/wechat` answers WeChat's server verification, `POST` takes its
XML pushes (text messages; subscribe and unsubscribe events), in plaintext or in safe mode (encrypted).

Nothing of a push is parsed before its signature is checked: every request must carry `signature` = SHA-1 of
the sorted `OUTREACH_WECHAT_TOKEN`, `timestamp` and `nonce`, and a missing or wrong one gets 403 and changes
nothing. In safe mode (`OUTREACH_WECHAT_AES_KEY` set; plaintext pushes are then refused) the envelope is read
for its `Encrypt` field, whose `msg_signature` must match (403) before the message inside is decrypted and
read. Pushes are untrusted XML, read with defusedxml: a body that is not UTF-8, a document type declaration,
an entity or an external reference gets 400 whatever the encoding tricks, as does anything that is not one
`<xml>` element of plain fields.

Replays. The plaintext signature does not cover the body, so a captured query string would sign any body
forever. Every request, GET and POST, in both modes, is therefore also refused (403, nothing written) when
its `timestamp` is not a number of seconds or is further than `wechat_replay_window` (5m) from the engine's
clock, either way; and inside the window each (timestamp, nonce) is taken once (`push_replay`). The order:
the URL signature, the window, in safe mode `msg_signature` and the decryption, the XML read, and only then
the pair claimed, so a forged or unreadable request never uses up a genuine push's nonce. The pair is kept
with a digest of the message (decrypted, in safe mode) or, for a GET, of its `echostr`:

- the same pair with another body (a captured signature reused) gets 403;
- the same pair with the same message is WeChat's redelivery (it pushes again when we took over 5 s; whether
  it keeps the timestamp and nonce is not documented, MsgId it keeps): answered `success` and not acted on
  again, so an event is never applied twice out of order (a replayed subscribe after the unsubscribe);
- if acting on a claimed push fails (the store down, a 500), the claim is released so WeChat's retry is
  taken: no message is lost to its own redelivery. Filing is idempotent on MsgId besides.

GET verification is held to the same window and nonce rule: its signature has the same form as a push's, so
an unspent verification URL would otherwise sign a plaintext push. Its repeat (same echostr) is echoed again.
Since all this bounds a replay but cannot stop a push altered in flight, the app warns when it starts in
plaintext mode with a public URL beyond this machine (`plaintext_warning`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

import defusedxml
from defusedxml.ElementTree import fromstring
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from outreach.core.durations import format_duration, parse_duration
from outreach.core.errors import InputError
from outreach.core.settings import Settings, mask_url
from outreach.customers.profiles import ConsentStatus, set_consent
from outreach.inbound.responses import InboundMessage, ReadAs, file_inbound
from outreach.store.database import utcnow
from outreach.store.schema import customers
from outreach.web import wechat_crypto
from outreach.web.bodies import BadRequest, read_body
from outreach.web.push_replay import MAX_NONCE, PushPair, Seen
from outreach.web.state import AppState

log = logging.getLogger(__name__)

PATH = "/webhooks/wechat"
# Unix seconds as WeChat writes them: ASCII digits only (str.isdigit would take other scripts' digits).
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")

# The encoding an XML declaration names, if it names one.
_DECLARED_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")


def signature_for(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def replay_window(settings: Settings) -> timedelta:
    """The `wechat_replay_window` setting; InputError naming it when it is not a duration."""
    try:
        return parse_duration(settings.wechat_replay_window)
    except ValueError as exc:
        raise InputError.single("wechat_replay_window", str(exc)) from None


def plaintext_warning(settings: Settings) -> str | None:
    """What to warn of when WeChat pushes would be taken in plaintext mode at a URL beyond this machine."""
    if not settings.wechat_token or settings.wechat_aes_key:
        return None
    host = urlsplit(settings.public_url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback:
        return None
    return (
        f"WeChat pushes to {mask_url(settings.public_url.rstrip('/'))}{PATH} are taken in plaintext mode: their"
        " signature does not cover the body, so whoever is on the network path can alter a push before it"
        " arrives. Set OUTREACH_WECHAT_AES_KEY and switch the Official Account to safe mode (安全模式)"
    )


@dataclass(frozen=True)
class Signed:
    """The `timestamp` and `nonce` of a request whose URL signature matched and whose timestamp is fresh."""

    timestamp: int
    nonce: str

    def pair(self, content: bytes, window: timedelta) -> PushPair:
        return PushPair.of(self.timestamp, self.nonce, hashlib.sha256(content).hexdigest(), window)


def _check_query(request: Request, settings: Settings, window: timedelta, now: datetime) -> Signed:
    """The URL signature, then the timestamp's freshness; BadRequest(403) for a request that fails either."""
    token = settings.wechat_token
    params = request.query_params
    signature, timestamp, nonce = params.get("signature"), params.get("timestamp"), params.get("nonce")
    if not token:
        raise BadRequest(403, "WeChat webhooks are not configured (OUTREACH_WECHAT_TOKEN)")
    if not (signature and timestamp and nonce):
        raise BadRequest(403, "missing signature")
    if not hmac.compare_digest(signature_for(token, timestamp, nonce), signature):
        raise BadRequest(403, "invalid signature")
    return Signed(_fresh_timestamp(timestamp, window, now), _checked_nonce(nonce))


def _fresh_timestamp(timestamp: str, window: timedelta, now: datetime) -> int:
    """The timestamp in Unix seconds if it is within `window` of `now`, either way; BadRequest(403) if not."""
    if not _TIMESTAMP.match(timestamp):
        raise BadRequest(403, "timestamp is not a number of seconds")
    seconds = int(timestamp)
    # Both ways: WeChat's clock may run a little ahead of ours, but a push signed for far ahead would
    # otherwise be replayable until then.
    drift = seconds - now.timestamp()
    if drift < -window.total_seconds():
        raise BadRequest(403, f"timestamp older than the replay window ({format_duration(window)})")
    if drift > window.total_seconds():
        raise BadRequest(403, f"timestamp further ahead than the replay window ({format_duration(window)})")
    return seconds


def _checked_nonce(nonce: str) -> str:
    if len(nonce) > MAX_NONCE:
        raise BadRequest(403, f"nonce longer than {MAX_NONCE} characters")
    return nonce


async def _claim(state: AppState, pair: PushPair, now: datetime) -> Seen:
    """Take the pair for this request; BadRequest(403) when it came before with other content."""
    seen = await run_in_threadpool(state.push_nonces.claim, pair, now)
    if seen is Seen.REPLAY:
        raise BadRequest(403, "replayed: this timestamp and nonce already came with another request")
    if seen is Seen.REPEAT:
        log.info(
            "WeChat request at timestamp %s, nonce %s, again: acknowledged, not acted on twice",
            pair.timestamp,
            pair.nonce,
        )
    return seen


def parse_push(body: bytes) -> dict[str, str]:
    """The fields of a WeChat push (`<xml><ToUserName>...`); BadRequest(400) for anything else."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "the body must be UTF-8") from None
    declared = _DECLARED_ENCODING.match(body)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise BadRequest(400, "the body must be UTF-8")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise BadRequest(400, "document type declarations, entities and external references are refused") from None
    except ParseError:
        raise BadRequest(400, "malformed XML") from None
    if root.tag != "xml" or any(len(child) for child in root):
        raise BadRequest(400, "expected one <xml> element of plain fields")
    return {child.tag: (child.text or "").strip() for child in root}


def _read_message(request: Request, settings: Settings, body: bytes) -> bytes:
    """The XML message of a request whose URL signature has been checked: the body, or in safe mode the
    message decrypted from its envelope once `msg_signature` matches."""
    encrypted = request.query_params.get("encrypt_type", "").lower() == "aes"
    if not settings.wechat_aes_key:
        if encrypted:
            raise BadRequest(403, "safe-mode pushes need OUTREACH_WECHAT_AES_KEY and OUTREACH_WECHAT_APP_ID")
        return body
    if not encrypted:
        raise BadRequest(400, "safe mode is configured (OUTREACH_WECHAT_AES_KEY): plaintext pushes are refused")
    if not settings.wechat_app_id:
        raise BadRequest(403, "safe-mode pushes need OUTREACH_WECHAT_APP_ID")
    envelope = parse_push(body)
    ciphertext = envelope.get("Encrypt", "")
    assert settings.wechat_token  # _check_query refused the request otherwise
    params = request.query_params
    expected = wechat_crypto.message_signature(
        settings.wechat_token, params.get("timestamp", ""), params.get("nonce", ""), ciphertext
    )
    if not ciphertext or not wechat_crypto.signature_matches(expected, params.get("msg_signature")):
        raise BadRequest(403, "invalid message signature")
    key = wechat_crypto.aes_key(settings.wechat_aes_key)
    try:
        return wechat_crypto.decrypt(key, settings.wechat_app_id, ciphertext)
    except wechat_crypto.DecryptionError as exc:
        raise BadRequest(400, f"encrypted message refused: {exc}") from None


async def wechat(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    now = utcnow()
    if request.method == "GET":
        signed = _check_query(request, state.settings, state.wechat_replay_window, now)
        echostr = request.query_params.get("echostr", "")
        # Nothing to undo if answering fails: a repeat is echoed again.
        await _claim(state, signed.pair(b"GET\n" + echostr.encode(), state.wechat_replay_window), now)
        return PlainTextResponse(echostr)
    body = await read_body(request, state.settings.max_request_bytes)
    signed = _check_query(request, state.settings, state.wechat_replay_window, now)
    message = _read_message(request, state.settings, body)
    push = parse_push(message)
    sender = push.get("FromUserName", "")
    kind = push.get("MsgType", "")
    if not sender or not kind:
        raise BadRequest(400, "missing FromUserName or MsgType")
    pair = signed.pair(b"POST\n" + message, state.wechat_replay_window)
    if await _claim(state, pair, now) is Seen.REPEAT:
        return PlainTextResponse("success")
    try:
        await _act_on(state, push, sender, kind)
    except BaseException:
        # Not taken after all: WeChat's retry of this push (perhaps with the same nonce) must be.
        try:
            await run_in_threadpool(state.push_nonces.release, pair)
        except Exception:
            log.exception("WeChat push at timestamp %s: its nonce could not be released", pair.timestamp)
        raise
    return PlainTextResponse("success")


async def _act_on(state: AppState, push: dict[str, str], sender: str, kind: str) -> None:
    if kind == "text":
        message_id = push.get("MsgId") or f"{sender}:{push.get('CreateTime', '')}"
        message = InboundMessage(
            "wechat", message_id, sender, push.get("Content", ""), to_address=push.get("ToUserName")
        )
        filed = await run_in_threadpool(file_inbound, state.engine, message, state.settings)
        if filed.inbound_id is not None and filed.read_as is ReadAs.REPLY:
            await run_in_threadpool(state.answer, filed.inbound_id)
    elif kind == "event" and push.get("Event", "").lower() in ("subscribe", "unsubscribe"):
        following = push["Event"].lower() == "subscribe"
        await run_in_threadpool(_follow, state.engine, sender, following)
    # Anything else (images, voice, menu clicks) is acknowledged and not acted on yet.


def _follow(engine: Engine, openid: str, following: bool) -> None:
    """Following the Official Account grants the wechat consent; unfollowing revokes it (both purposes)."""
    import sqlalchemy as sa

    now = utcnow()
    with engine.begin() as conn:
        matched = list(conn.execute(sa.select(customers.c.id).where(customers.c.wechat_openid == openid)).scalars())
        for customer_id in matched:
            for purpose in ("marketing", "service"):
                status: ConsentStatus = "granted" if following else "revoked"
                source = "wechat:subscribe" if following else "wechat:unsubscribe"
                set_consent(conn, customer_id, "wechat", purpose, status, source, at=now)
