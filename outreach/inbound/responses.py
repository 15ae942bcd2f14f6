"""What customers send us, filed onto their profiles: opt-outs, opt-ins, help requests, survey answers and
plain replies.

Each inbound message is kept once (the provider's message id is unique), so a webhook delivered twice or a
mailbox read twice changes nothing the second time. The sender is matched to every customer with that
address (phone in E.164, email case-insensitively). The text is read in this order:

1. an opt-out keyword (STOP, R, 退订 ... on SMS and WhatsApp) revokes marketing consent on that channel:
   saying no always wins;
2. an answer to the customer's open survey question (see `answers`);
3. an opt-in keyword (START, UNSTOP, YES) restores consent that an opt-out revoked (never grants consent the
   customer did not give before), and HELP gets the help text;
4. anything else is a reply to the latest message we sent them on that channel, and opens or extends the
   customer's conversation (see `conversations`), where inbound triggers and operators answer it.

A message on SMS, WhatsApp or WeChat from an address no customer has gets a provisional profile (see
`provisional`), so it is kept, answered and honoured (an opt-out from a stranger still counts) like anyone's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.core.durations import parse_duration
from outreach.core.settings import Settings
from outreach.customers.conversations import note_inbound
from outreach.customers.profiles import consent_status, set_consent
from outreach.customers.provisional import CHANNELS as PROVISIONAL_CHANNELS
from outreach.customers.provisional import provisional_customer
from outreach.inbound.keywords import Keyword, keyword, normalize
from outreach.inbound.survey_answers import ANSWERED_STATES, Question, mark_replied, open_question, record_answer
from outreach.planning.messages import by_locale
from outreach.store.database import insert_returning, utcnow
from outreach.store.events import add_events, event_row
from outreach.store.schema import customers, deliveries, inbound_messages

# Channels where a one-word message is a keyword; in an email a lone "stop" is too ambiguous to act on.
KEYWORD_CHANNELS = frozenset({"sms", "whatsapp"})
# Twilio itself answers these (and blocks further messages after STOP): we add no reply of our own.
TWILIO_HANDLED = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "start", "unstop", "yes"})
MAX_TEXT = 10_000


class ReadAs(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    SURVEY = "survey"
    REPLY = "reply"


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    provider_message_id: str
    from_address: str
    body: str
    to_address: str | None = None
    received_at: datetime | None = None
    # Ledger rows the message itself says it answers (an email's In-Reply-To), newest first.
    answers_deliveries: tuple[int, ...] = ()


@dataclass
class Filed:
    read_as: ReadAs
    duplicate: bool
    customer_ids: list[str] = field(default_factory=list)
    # The stored message (None for a duplicate), and the conversations it opened or extended (replies only).
    inbound_id: int | None = None
    conversation_ids: dict[str, int] = field(default_factory=dict)
    # Text to answer in the customer's thread (TwiML), if any.
    reply_text: str | None = None


def file_inbound(engine: Engine, message: InboundMessage, settings: Settings) -> Filed:
    with engine.begin() as conn:
        return file_in(conn, message, settings)


def file_in(conn: Connection, message: InboundMessage, settings: Settings) -> Filed:
    now = message.received_at or utcnow()
    text = message.body[:MAX_TEXT]
    matched = _customers(conn, message)
    if not matched and message.channel in PROVISIONAL_CHANNELS:
        address = message.from_address.strip()
        matched = [{"id": provisional_customer(conn, message.channel, address, now), "locale": None}]
    word = keyword(text) if message.channel in KEYWORD_CHANNELS else None
    questions: dict[str, tuple[Question, int | str]] = {}
    if word is not Keyword.OPT_OUT:
        for customer in matched:
            question = open_question(conn, customer["id"], now, settings)
            answer = question.read(text) if question else None
            if question is not None and answer is not None:
                questions[customer["id"]] = (question, answer)
    read_as = _read_as(word, bool(questions))
    locale = matched[0]["locale"] if matched else None
    filed = Filed(read_as, duplicate=False, customer_ids=[c["id"] for c in matched])
    filed.reply_text = _reply_text(read_as, text, locale, settings)
    answered = _answered_delivery(conn, message, matched, now, settings)
    inserted = insert_returning(
        conn,
        inbound_messages,
        [
            {
                "channel": message.channel,
                "provider_message_id": message.provider_message_id,
                "customer_id": matched[0]["id"] if matched else None,
                "from_address": message.from_address,
                "to_address": message.to_address,
                "body": text,
                "kind": str(read_as),
                "delivery_id": answered.get(matched[0]["id"]) if matched else None,
                "received_at": now,
                # only a reply can trigger an answer (see `inbound_triggers`): the rest have nothing to wait for
                "triggers_done_at": None if read_as is ReadAs.REPLY else now,
            }
        ],
        ("id",),
    )
    if not inserted:
        filed.duplicate = True
        return filed
    filed.inbound_id = int(inserted[0][0])
    for customer in matched:
        _apply(conn, message, customer["id"], read_as, text, questions.get(customer["id"]), answered, now)
    if read_as is ReadAs.REPLY:
        idle = parse_duration(settings.conversation_idle)
        # the message row names the first customer's conversation; each matched customer has their own
        for customer in reversed(matched):
            filed.conversation_ids[customer["id"]] = note_inbound(
                conn, customer["id"], filed.inbound_id, message.channel, now, idle
            )
    return filed


def _customers(conn: Connection, message: InboundMessage) -> list[dict[str, Any]]:
    c = customers.c
    address = message.from_address.strip()
    if message.channel == "email":
        where = sa.func.lower(c.email) == address.lower()
    elif message.channel == "wechat":
        where = c.wechat_openid == address
    elif message.channel == "whatsapp":
        number = address.removeprefix("whatsapp:")
        where = sa.or_(c.whatsapp == number, sa.and_(c.whatsapp.is_(None), c.phone == number))
    else:
        where = c.phone == address
    rows = [dict(r) for r in conn.execute(sa.select(c.id, c.locale).where(where).order_by(c.id)).mappings()]
    if not rows and message.answers_deliveries:
        # Written from another address (an alias, a forward) but in answer to our message: its customer.
        owners = sa.select(deliveries.c.customer_id).where(deliveries.c.id.in_(list(message.answers_deliveries)))
        rows = [dict(r) for r in conn.execute(sa.select(c.id, c.locale).where(c.id.in_(owners))).mappings()]
    return rows


def _read_as(word: Keyword | None, answers: bool) -> ReadAs:
    if word is Keyword.OPT_OUT:
        return ReadAs.OPT_OUT
    if answers:
        return ReadAs.SURVEY
    if word is Keyword.OPT_IN:
        return ReadAs.OPT_IN
    if word is Keyword.HELP:
        return ReadAs.HELP
    return ReadAs.REPLY


def _reply_text(read_as: ReadAs, text: str, locale: str | None, settings: Settings) -> str | None:
    if read_as is ReadAs.HELP:
        return by_locale(settings.sms_help, locale)
    # Twilio matches its words exactly (ignoring case and spaces): a full-width ＳＴＯＰ is ours to confirm.
    if read_as is ReadAs.OPT_OUT and text.strip().lower() not in TWILIO_HANDLED:
        return by_locale(settings.sms_opted_out, locale)
    return None


def _answered_delivery(
    conn: Connection, message: InboundMessage, matched: Sequence[dict[str, Any]], now: datetime, settings: Settings
) -> dict[str, int]:
    """customer id -> the ledger row this message answers: the one it names, else the latest sent to the
    customer on this channel within the reply window."""
    if not matched:
        return {}
    d = deliveries.c
    ids = [c["id"] for c in matched]
    if message.answers_deliveries:
        rows = conn.execute(
            sa.select(d.id, d.customer_id).where(d.id.in_(list(message.answers_deliveries)), d.customer_id.in_(ids))
        ).all()
        named = {r.customer_id: r.id for r in rows}
        if named:
            return named
    since = now - parse_duration(settings.reply_window)
    latest: dict[str, int] = {}
    rows = conn.execute(
        sa.select(d.id, d.customer_id)
        .where(
            d.customer_id.in_(ids),
            d.channel == message.channel,
            d.status.in_(list(ANSWERED_STATES)),
            d.sent_at >= since,
        )
        .order_by(d.sent_at, d.id)
    ).all()
    for row in rows:
        latest[row.customer_id] = row.id  # the last one wins
    return latest


def _apply(
    conn: Connection,
    message: InboundMessage,
    customer_id: str,
    read_as: ReadAs,
    text: str,
    question: tuple[Question, int | str] | None,
    answered: dict[str, int],
    now: datetime,
) -> None:
    delivery_id = answered.get(customer_id)
    campaign_id = _campaign_of(conn, delivery_id)
    add_events(
        conn,
        [
            event_row(
                customer_id,
                "reply.received",
                {"channel": message.channel, "text": text, "read_as": str(read_as), "from": message.from_address},
                at=now,
                delivery_id=delivery_id,
                campaign_id=campaign_id,
            )
        ],
    )
    source = f"{message.channel}:keyword {normalize(text).upper()}"
    if read_as is ReadAs.OPT_OUT:
        changed = set_consent(
            conn,
            customer_id,
            message.channel,
            "marketing",
            "revoked",
            source,
            at=now,
            delivery_id=delivery_id,
            campaign_id=campaign_id,
        )
        if changed and delivery_id is not None:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id, deliveries.c.opted_out_at.is_(None))
                .values(opted_out_at=now, updated_at=now)
            )
    elif read_as is ReadAs.OPT_IN:
        if consent_status(conn, customer_id, message.channel, "marketing") == "revoked":
            set_consent(conn, customer_id, message.channel, "marketing", "granted", source, at=now)
    elif read_as is ReadAs.SURVEY and question is not None:
        record_answer(conn, customer_id, question[0], question[1], text, now)
    elif read_as is ReadAs.REPLY and delivery_id is not None:
        mark_replied(conn, delivery_id, now)


def _campaign_of(conn: Connection, delivery_id: int | None) -> str | None:
    if delivery_id is None:
        return None
    value = conn.execute(sa.select(deliveries.c.campaign_id).where(deliveries.c.id == delivery_id)).scalar()
    return str(value) if value is not None else None
