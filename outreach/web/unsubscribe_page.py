"""Unsubscribe links: `GET /u/{token}` shows a small page with a confirm button (a link scanner fetching it
changes nothing); `POST /u/{token}` unsubscribes, both from that button and as the RFC 8058 one-click
endpoint (`List-Unsubscribe=One-Click`, no cookies, no redirect). A forged or altered token gets 404."""

from __future__ import annotations

import html
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from outreach.customers.profiles import consent_status, get_customer, set_consent
from outreach.customers.unsubscribe import read_token
from outreach.planning.messages import by_locale
from outreach.store.database import utcnow
from outreach.store.ledger import Status
from outreach.store.schema import deliveries
from outreach.web.bodies import BadRequest, parse_form, read_body
from outreach.web.page_style import STYLE_ELEMENT
from outreach.web.state import AppState

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "lang": "zh-CN",
        "title": "退订",
        "ask": "确认不再通过{channel}接收{purpose}信息吗?",
        "button": "确认退订",
        "done": "您已退订{channel}{purpose}信息。",
        "already": "您已退订{channel}{purpose}信息,无需再次操作。",
        "marketing": "营销",
        "service": "服务",
        "email": "电子邮件",
        "sms": "短信",
    },
    "en": {
        "lang": "en",
        "title": "Unsubscribe",
        "ask": "Stop receiving {purpose} messages by {channel}?",
        "button": "Unsubscribe",
        "done": "You are unsubscribed from {purpose} messages by {channel}.",
        "already": "You are already unsubscribed from {purpose} messages by {channel}.",
        "marketing": "marketing",
        "service": "service",
        "email": "email",
        "sms": "SMS",
    },
}
TEXTS["default"] = TEXTS["en"]


def _page(texts: dict[str, str], message: str, form_action: str | None = None) -> HTMLResponse:
    button = (
        f'<form method="post" action="{html.escape(form_action)}">'
        f'<button type="submit" name="confirm" value="yes">{html.escape(texts["button"])}</button></form>'
        if form_action
        else ""
    )
    body = (
        f'<!doctype html><html lang="{texts["lang"]}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(texts['title'])}</title>{STYLE_ELEMENT}</head>"
        f"<body><p>{html.escape(message)}</p>{button}</body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _words(texts: dict[str, str], channel: str, purpose: str) -> dict[str, str]:
    return {"channel": texts.get(channel, channel), "purpose": texts.get(purpose, purpose)}


def _lookup(engine: Engine, customer_id: str, channel: str, purpose: str) -> tuple[str | None, str | None] | None:
    with engine.connect() as conn:
        customer = get_customer(conn, customer_id)
        if customer is None:
            return None
        return customer.get("locale"), consent_status(conn, customer_id, channel, purpose)


def _unsubscribe(engine: Engine, customer_id: str, channel: str, purpose: str, source: str) -> bool:
    now = utcnow()
    with engine.begin() as conn:
        d = deliveries.c
        latest: Any = conn.execute(
            sa.select(d.id, d.campaign_id)
            .where(
                d.customer_id == customer_id,
                d.channel == channel,
                d.purpose == purpose,
                d.status.in_([Status.SENT, Status.DELIVERED]),
            )
            .order_by(d.sent_at.desc(), d.id.desc())
            .limit(1)
        ).first()
        changed = set_consent(
            conn,
            customer_id,
            channel,
            purpose,
            "revoked",
            source,
            at=now,
            delivery_id=latest.id if latest else None,
            campaign_id=latest.campaign_id if latest else None,
        )
        if changed and latest is not None:
            conn.execute(deliveries.update().where(d.id == latest.id).values(opted_out_at=now, updated_at=now))
        return changed


async def unsubscribe(request: Request) -> Response:
    state: AppState = request.app.state.outreach
    if request.method == "POST":
        # Read (and bound) the body before anything else, so that an oversized one gets 413 whatever the token.
        form = parse_form(
            await read_body(request, state.settings.max_request_bytes), request.headers.get("content-type")
        )
    token = read_token(state.signing_key, request.path_params["token"])
    if token is None:
        raise BadRequest(404, "no such unsubscribe link")
    customer_id, channel, purpose = token
    found = await run_in_threadpool(_lookup, state.engine, customer_id, channel, purpose)
    if found is None:
        raise BadRequest(404, "no such unsubscribe link")
    locale, status = found
    language = by_locale({"zh": "zh", "en": "en", "default": "default"}, locale)
    texts = TEXTS[language]
    words = _words(texts, channel, purpose)
    if request.method == "GET":
        if status == "revoked":
            return _page(texts, texts["already"].format(**words))
        return _page(texts, texts["ask"].format(**words), form_action=str(request.url.path))
    one_click = form.get("List-Unsubscribe") == "One-Click"
    source = f"{channel}:{'one-click' if one_click else 'unsubscribe-page'}"
    await run_in_threadpool(_unsubscribe, state.engine, customer_id, channel, purpose, source)
    return _page(texts, texts["done"].format(**words))
