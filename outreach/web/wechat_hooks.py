"""WeChat Official Account server: `GET /webhooks/wechat` answers WeChat's server verification, `POST` takes its
XML pushes (text messages; subscribe and unsubscribe events).

Every request must carry `signature` = SHA-1 of the sorted `OUTREACH_WECHAT_TOKEN`, `timestamp` and `nonce`;
a missing or wrong one gets 403 and changes nothing. Pushes are untrusted XML: a document type declaration
(the door to entity expansion) is refused with 400 before parsing, as is anything that is not one `<xml>`
element of plain fields.
"""

from __future__ import annotations

import hashlib
import hmac
import xml.etree.ElementTree as ET

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from outreach.config import Settings
from outreach.db import utcnow
from outreach.profiles import ConsentStatus, set_consent
from outreach.responses import InboundMessage, ReadAs, file_inbound
from outreach.schema import customers
from outreach.web.bodies import BadRequest, read_body
from outreach.web.state import AppState

PATH = "/webhooks/wechat"


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
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest(400, "document type declarations are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise BadRequest(400, "malformed XML") from None
    if root.tag != "xml" or any(len(child) for child in root):
        raise BadRequest(400, "expected one <xml> element of plain fields")
    return {child.tag: (child.text or "").strip() for child in root}


async def wechat(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    if request.method == "GET":
        _check_signature(request, state.settings)
        return PlainTextResponse(request.query_params.get("echostr", ""))
    body = await read_body(request, state.settings.max_request_bytes)
    push = parse_push(body)
    _check_signature(request, state.settings)
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
