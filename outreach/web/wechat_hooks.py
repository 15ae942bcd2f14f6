"""WeChat Official Account server: `GET /webhooks/wechat` answers WeChat's server verification, `POST` takes its
XML pushes (text messages; subscribe and unsubscribe events), in plaintext or in safe mode (encrypted).

Nothing of a push is parsed before its signature is checked: every request must carry `signature` = SHA-1 of
the sorted `OUTREACH_WECHAT_TOKEN`, `timestamp` and `nonce`, and a missing or wrong one gets 403 and changes
nothing. In safe mode (`OUTREACH_WECHAT_AES_KEY` set; plaintext pushes are then refused) the envelope is read
for its `Encrypt` field, whose `msg_signature` must match (403) before the message inside is decrypted and
read. Pushes are untrusted XML, read with defusedxml: a body that is not UTF-8, a document type declaration,
an entity or an external reference gets 400 whatever the encoding tricks, as does anything that is not one
`<xml>` element of plain fields.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from xml.etree.ElementTree import ParseError

import defusedxml
from defusedxml.ElementTree import fromstring
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from outreach.core.settings import Settings
from outreach.customers.profiles import ConsentStatus, set_consent
from outreach.inbound.responses import InboundMessage, ReadAs, file_inbound
from outreach.store.database import utcnow
from outreach.store.schema import customers
from outreach.web import wechat_crypto
from outreach.web.bodies import BadRequest, read_body
from outreach.web.state import AppState

PATH = "/webhooks/wechat"

# The encoding an XML declaration names, if it names one.
_DECLARED_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")


def signature_for(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def _check_signature(request: Request, settings: Settings) -> None:
    token = settings.wechat_token
    params = request.query_params
    signature, timestamp, nonce = params.get("signature"), params.get("timestamp"), params.get("nonce")
    if not token:
        raise BadRequest(403, "WeChat webhooks are not configured (OUTREACH_WECHAT_TOKEN)")
    if not (signature and timestamp and nonce):
        raise BadRequest(403, "missing signature")
    if not hmac.compare_digest(signature_for(token, timestamp, nonce), signature):
        raise BadRequest(403, "invalid signature")


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


def _read_push(request: Request, settings: Settings, body: bytes) -> dict[str, str]:
    """The push of a request whose URL signature has been checked, decrypted first in safe mode."""
    encrypted = request.query_params.get("encrypt_type", "").lower() == "aes"
    if not settings.wechat_aes_key:
        if encrypted:
            raise BadRequest(403, "safe-mode pushes need OUTREACH_WECHAT_AES_KEY and OUTREACH_WECHAT_APP_ID")
        return parse_push(body)
    if not encrypted:
        raise BadRequest(400, "safe mode is configured (OUTREACH_WECHAT_AES_KEY): plaintext pushes are refused")
    if not settings.wechat_app_id:
        raise BadRequest(403, "safe-mode pushes need OUTREACH_WECHAT_APP_ID")
    envelope = parse_push(body)
    ciphertext = envelope.get("Encrypt", "")
    assert settings.wechat_token  # _check_signature refused the request otherwise
    params = request.query_params
    expected = wechat_crypto.message_signature(
        settings.wechat_token, params.get("timestamp", ""), params.get("nonce", ""), ciphertext
    )
    if not ciphertext or not wechat_crypto.signature_matches(expected, params.get("msg_signature")):
        raise BadRequest(403, "invalid message signature")
    key = wechat_crypto.aes_key(settings.wechat_aes_key)
    try:
        message = wechat_crypto.decrypt(key, settings.wechat_app_id, ciphertext)
    except wechat_crypto.DecryptionError as exc:
        raise BadRequest(400, f"encrypted message refused: {exc}") from None
    return parse_push(message)


async def wechat(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    if request.method == "GET":
        _check_signature(request, state.settings)
        return PlainTextResponse(request.query_params.get("echostr", ""))
    body = await read_body(request, state.settings.max_request_bytes)
    _check_signature(request, state.settings)
    push = _read_push(request, state.settings, body)
    sender = push.get("FromUserName", "")
    kind = push.get("MsgType", "")
    if not sender or not kind:
        raise BadRequest(400, "missing FromUserName or MsgType")
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
    return PlainTextResponse("success")


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
