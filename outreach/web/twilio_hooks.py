"""Twilio's webhooks: delivery status callbacks and inbound messages.

Every request must carry a valid `X-Twilio-Signature` over the public URL Twilio called
(`OUTREACH_PUBLIC_URL` + path + query) and the form parameters; anything else gets 403 and changes nothing.
Checks run in this order, and none of them writes: body size (413), form syntax (400), signature (403),
required fields (400).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from outreach.inbound.provider_reports import StatusReport
from outreach.inbound.responses import InboundMessage, ReadAs, file_inbound
from outreach.web.bodies import BadRequest, parse_form, read_body
from outreach.web.state import AppState

log = logging.getLogger(__name__)

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"


async def signed_form(request: Request, state: AppState) -> dict[str, str]:
    """The form parameters of a genuine Twilio request; BadRequest otherwise."""
    body = await read_body(request, state.settings.max_request_bytes)
    form = parse_form(body, request.headers.get("content-type"))
    signature = request.headers.get("x-twilio-signature")
    token = state.settings.twilio_auth_token
    if not signature or not token:
        raise BadRequest(403, "missing X-Twilio-Signature" if token else "Twilio webhooks are not configured")
    url = state.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not RequestValidator(token).validate(url, form, signature):
        raise BadRequest(403, "invalid X-Twilio-Signature")
    return form


def _required(form: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not form.get(n)]
    if missing:
        raise BadRequest(400, "missing " + ", ".join(missing))
    return [form[n] for n in names]


async def status_callback(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    form = await signed_form(request, state)
    sid, status = _required(form, "MessageSid", "MessageStatus")
    delivery = request.query_params.get("d")
    report = StatusReport(
        provider_message_id=sid,
        status=status,
        error_code=form.get("ErrorCode") or None,
        delivery_id=int(delivery) if delivery and delivery.isdigit() else None,
    )
    outcome = await state.status_reports.submit(report)
    log.debug("status %s for %s: %s", status, sid, outcome)
    return PlainTextResponse(str(outcome))


async def inbound_message(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    form = await signed_form(request, state)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid:
        raise BadRequest(400, "missing MessageSid")
    (sender,) = _required(form, "From")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    message = InboundMessage(
        channel=channel,
        provider_message_id=sid,
        from_address=sender.removeprefix("whatsapp:"),
        to_address=form.get("To"),
        body=form.get("Body", ""),
    )
    filed = await run_in_threadpool(file_inbound, state.engine, message, state.settings)
    if filed.inbound_id is not None and filed.read_as is ReadAs.REPLY:
        await run_in_threadpool(state.answer, filed.inbound_id)
    twiml: Any = MessagingResponse()
    if filed.reply_text and not filed.duplicate:
        twiml.message(filed.reply_text)
    return Response(str(twiml), media_type="application/xml")
