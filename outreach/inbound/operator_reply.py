"""An operator's reply to one customer (`outreach reply`): a service message through the same ledger, workers,
retries and reports as every other message, on the timeline with who wrote it and in the audit log. It
answers the customer's open conversation (see `conversations`): they are no longer waiting.

A reply on WhatsApp or WeChat goes only inside the platform's window after the customer's last message; a
customer who revoked service messages on that channel is not written to; an unusable address is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.rendering import (
    MissingData,
    RenderError,
    TemplateText,
    check_template,
    compile_template,
    customer_context,
    render,
)
from outreach.campaigns.template_files import OPTIONAL_PARTS, TemplateNameError, candidate_files
from outreach.channels.sms_encoding import sms_size
from outreach.core.errors import InputError, OutreachError
from outreach.core.settings import Settings
from outreach.customers.conversations import note_reply, open_conversation_id
from outreach.customers.profiles import consent_status, get_customer
from outreach.customers.reachability import unreachable
from outreach.customers.reply_windows import REASON as WINDOW_CLOSED
from outreach.customers.reply_windows import REPLY_WINDOWS, open_windows
from outreach.planning.queueing import Transport
from outreach.store import audit
from outreach.store.database import utcnow
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.ledger import new_row, queue_one
from outreach.store.schema import deliveries

CAMPAIGN = "operator"  # the ledger's campaign id of operators' replies


def send_reply(
    engine: Engine,
    transport: Transport | None,
    customer_id: str,
    channel: str,
    text: str,
    actor: str,
    subject: str | None = None,
    html: str | None = None,
) -> int:
    """Write the reply into the ledger and hand it to the workers; returns its delivery id."""
    if channel not in ADDRESS_FIELDS:
        raise InputError.single("--channel", f"{channel!r}: use {', '.join(ADDRESS_FIELDS)}")
    if not text.strip():
        raise InputError.single("TEXT", "the reply is empty")
    now = utcnow()
    address_field, flag_field = ADDRESS_FIELDS[channel]
    with engine.begin() as conn:
        found = get_customer(conn, customer_id)
        if found is None:
            raise InputError.single(customer_id, "no customer with this id")
        customer: Mapping[str, Any] = found  # read by the channel's column names
        address = customer.get(address_field)
        window_open = channel not in REPLY_WINDOWS or bool(open_windows(conn, [customer_id], [channel], now))
        consent = consent_status(conn, customer_id, channel, "service")
        why = unreachable(customer, channel, "service", consent, window_open)
        if why == "no_address":
            raise OutreachError(f"{customer_id} has no {address_field}: cannot reply by {channel}")
        if why == "invalid_address":
            raise OutreachError(f"{customer_id}'s {address_field} is marked invalid ({customer[flag_field]})")
        if why is not None and why != WINDOW_CLOSED:
            raise OutreachError(f"{customer_id} has opted out of {channel} messages")
        if why == WINDOW_CLOSED:
            hours = int(REPLY_WINDOWS[channel].total_seconds() // 3600)
            raise OutreachError(
                f"window_closed: {customer_id} has not written on {channel} in the last {hours} hours; "
                "reply on another channel"
            )
        occurrence = f"reply-{uuid.uuid4().hex[:16]}"
        row = new_row(
            campaign_id=CAMPAIGN,
            occurrence=occurrence,
            step_id="reply",
            customer_id=customer_id,
            channel=channel,
            purpose="service",
            address=address,
            now=now,
            subject=(subject or "Re: your message") if channel == "email" else None,
            body=text,
            html=html if channel == "email" else None,
            sms_segments=sms_size(text).segments if channel == "sms" else None,
        )
        data = {"step": "reply", "channel": channel, "by": actor, "text": text}
        delivery_id = queue_one(conn, row, "delivery.planned", data, now)
        conversation_id = open_conversation_id(conn, customer_id)
        if conversation_id is not None:  # it answers what the customer is waiting for, on whichever channel
            note_reply(conn, conversation_id, delivery_id, now, by_operator=True)
        audit.record(conn, actor, "reply", target=customer_id, rows=1, detail={"channel": channel}, at=now)
    if transport is not None:
        transport.enqueue([delivery_id])
    return delivery_id


@dataclass(frozen=True)
class ReplyText:
    body: str
    subject: str | None = None
    html: str | None = None


def reply_from_template(engine: Engine, settings: Settings, customer_id: str, channel: str, name: str) -> ReplyText:
    """Render the template `name` (files under OUTREACH_TEMPLATES_DIR, as campaigns name them) for one
    customer; a template that does not exist, does not parse or needs a value the customer lacks is refused."""
    if channel not in ADDRESS_FIELDS:
        raise InputError.single("--channel", f"{channel!r}: use {', '.join(ADDRESS_FIELDS)}")
    try:
        files = candidate_files(settings.templates_dir, name, channel)
    except TemplateNameError as exc:
        raise InputError.single("--template", str(exc)) from None
    with engine.connect() as conn:
        customer = get_customer(conn, customer_id)
    if customer is None:
        raise InputError.single(customer_id, "no customer with this id")
    context = customer_context(customer)
    parts: dict[str, str] = {}
    for part, candidates in files.items():
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            if part in OPTIONAL_PARTS:
                continue
            raise InputError.single("--template", f"{name}: {channel} needs the template file {candidates[0]}")
        source = TemplateText(
            path.read_text(encoding="utf-8"), str(path), lambda line: (line, None), html=part == "html"
        )
        problems = check_template(source, None)
        if problems:
            raise InputError(problems)
        try:
            parts[part] = render(compile_template(source), context)
        except MissingData as exc:
            raise OutreachError(f"{path}: {customer_id} lacks a value the template needs: {exc}") from None
        except RenderError as exc:
            raise OutreachError(f"{path}: {exc}") from None
    if channel == "email":
        return ReplyText(parts["text"], parts["subject"], parts.get("html"))
    return ReplyText(parts["body"])


def reply_status(engine: Engine, delivery_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)).scalar_one())
