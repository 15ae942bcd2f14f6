"""Inbound triggers: campaigns with `trigger: inbound` answer what customers write, within seconds.

When a customer's message (a reply: not a keyword, not a survey answer) arrives on one of a trigger's
channels and its text matches the trigger's regular expression (case-insensitive; the `regex` engine, with a
timeout), the campaign's first steps are planned for that customer alone, as the occurrence
`inbound-<message id>`: through the same ledger, consent checks, workers and retries as any message, and
once per inbound message however often the platform redelivers it (the idempotency keys of that
occurrence). `channel: reply` is the channel the customer wrote on; `tag:` is added to the customer's `tags`
attribute and to their conversation.

`outreach serve` runs the triggers as each message is filed; the scheduler's sweep runs them for messages
whose triggers did not get their say (the server stopped in between): each message's `triggers_done_at` says.
A service campaign's answer goes at once, whatever the quiet hours (the customer has just written), unless
the campaign sets its own `quiet_hours`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import regex
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers.conversations import add_tag, note_reply
from outreach.customers.profiles import change_attributes, declare_attributes, with_list_values
from outreach.customers.provisional import TAGS
from outreach.delivery.campaign_control import inactive_campaigns
from outreach.inbound.responses import ReadAs
from outreach.planning.planner import plan_campaign
from outreach.planning.queueing import Transport
from outreach.store.database import utcnow
from outreach.store.events import add_events, event_row
from outreach.store.schema import attribute_types, customers, inbound_messages

log = logging.getLogger(__name__)

REPLY = "reply"
OCCURRENCE_PREFIX = "inbound-"
# Only the start of a long message is matched, and a pattern gets so long on it (the `regex` engine's timeout):
# a pattern's cost must not grow with what a stranger sends.
MATCH_CHARS = 2000
MATCH_TIMEOUT_S = 0.1
# The sweep answers messages this old and older (the server had its chance) and no older than the horizon.
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_HORIZON = timedelta(hours=1)


def occurrence_of(inbound_id: int) -> str:
    return f"{OCCURRENCE_PREFIX}{inbound_id}"


def inbound_id_of(occurrence: str) -> int | None:
    rest = occurrence.removeprefix(OCCURRENCE_PREFIX)
    return int(rest) if rest != occurrence and rest.isdigit() else None


def reply_channel(engine: Engine, occurrence: str) -> str | None:
    """The channel of the message an `inbound-N` occurrence answers."""
    inbound_id = inbound_id_of(occurrence)
    if inbound_id is None:
        return None
    with engine.connect() as conn:
        channel = conn.execute(sa.select(inbound_messages.c.channel).where(inbound_messages.c.id == inbound_id))
        return channel.scalar()


def matching(campaigns: Sequence[LoadedCampaign], channel: str, text: str) -> list[LoadedCampaign]:
    """The trigger campaigns that answer `text` written on `channel`. A pattern that takes longer than
    MATCH_TIMEOUT_S on a message (catastrophic backtracking on what a stranger wrote) does not match it."""
    head = text[:MATCH_CHARS]
    found = []
    for loaded in campaigns:
        trigger = loaded.campaign.trigger
        if trigger is None or channel not in trigger.inbound.channels:
            continue
        try:
            if regex.search(trigger.inbound.match, head, regex.IGNORECASE, timeout=MATCH_TIMEOUT_S):
                found.append(loaded)
        except TimeoutError:
            log.error(
                "campaign %s: its `match` took over %s s on a %s message and was given up; simplify the pattern",
                loaded.id, MATCH_TIMEOUT_S, channel,
            )  # fmt: skip
    return found


def resolved_steps(loaded: LoadedCampaign, channel: str, steps: Sequence[Step] | None = None) -> list[Step]:
    """The steps with `channel: reply` on the channel the customer wrote on."""
    return [
        s.model_copy(update={"channel": channel}) if s.channel == REPLY else s
        for s in (steps if steps is not None else loaded.first_steps())
    ]


def answer_inbound(
    engine: Engine,
    campaigns: Sequence[LoadedCampaign],
    inbound_id: int,
    settings: Settings,
    transport: Transport | None,
) -> list[int]:
    """Run the triggers on one stored message (once: a message whose triggers have run is left alone).
    Returns the ledger rows planned."""
    with engine.connect() as conn:
        message = conn.execute(sa.select(inbound_messages).where(inbound_messages.c.id == inbound_id)).first()
    if message is None or message.triggers_done_at is not None:
        return []
    planned: list[int] = []
    if message.kind == str(ReadAs.REPLY) and message.customer_id is not None:
        answering = matching(campaigns, message.channel, message.body)
        stopped = inactive_campaigns(engine) if answering else set()
        for loaded in answering:
            if loaded.id in stopped:
                continue
            try:
                planned += _answer(engine, loaded, message, settings, transport)
            except InputError as exc:  # its segment no longer compiles against the catalog: say so, go on
                log.error("campaign %s cannot answer inbound message %s: %s", loaded.id, inbound_id, exc)
    with engine.begin() as conn:
        conn.execute(
            inbound_messages.update()
            .where(inbound_messages.c.id == inbound_id, inbound_messages.c.triggers_done_at.is_(None))
            .values(triggers_done_at=utcnow())
        )
    return planned


def answer_pending(
    engine: Engine, campaigns: Sequence[LoadedCampaign], settings: Settings, transport: Transport | None, now: datetime
) -> int:
    """The sweep: run the triggers on recent messages whose triggers never ran. Returns rows planned."""
    m = inbound_messages.c
    with engine.connect() as conn:
        waiting = list(
            conn.execute(
                sa.select(m.id)
                .where(
                    m.triggers_done_at.is_(None),
                    m.received_at <= now - SWEEP_AFTER,
                    m.received_at >= now - SWEEP_HORIZON,
                )
                .order_by(m.id)
            ).scalars()
        )
    return sum(len(answer_inbound(engine, campaigns, inbound_id, settings, transport)) for inbound_id in waiting)


def _answer(
    engine: Engine, loaded: LoadedCampaign, message: Any, settings: Settings, transport: Transport | None
) -> list[int]:
    customer_id: str = message.customer_id
    campaign = loaded.campaign
    now = utcnow()
    if campaign.tag:
        with engine.begin() as conn:
            _tag(conn, customer_id, campaign.tag, message.conversation_id, loaded.id, now)
    if campaign.purpose == "service" and campaign.quiet_hours is None:
        loaded = dataclasses.replace(loaded, campaign=campaign.model_copy(update={"quiet_hours": "off"}))

    def audience(_: Step, segment: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        # the campaign's segment still decides (a trigger for premium customers only); provisional profiles
        # are not left out as they are from campaigns: a stranger who writes is answered
        return sa.and_(customers.c.id == customer_id, segment)

    plan = plan_campaign(
        engine,
        loaded,
        settings,
        occurrence_of(message.id),
        dry_run=False,
        transport=transport,
        steps=resolved_steps(loaded, message.channel),
        audience=audience,
    )
    if plan.row_ids and message.conversation_id is not None:
        with engine.begin() as conn:
            for delivery_id in plan.row_ids:
                note_reply(conn, message.conversation_id, delivery_id, now, by_operator=False)
    return plan.row_ids


def _tag(
    conn: Connection, customer_id: str, tag: str, conversation_id: int | None, campaign_id: str, now: datetime
) -> None:
    """Add `tag` to the customer's `tags` list attribute (declared a list, so segments can ask
    `'complaint' in tags`) and to the conversation."""
    declare_attributes(conn, {TAGS: "list"})
    declared = conn.execute(sa.select(attribute_types.c.type).where(attribute_types.c.name == TAGS)).scalar()
    if conversation_id is not None:
        add_tag(conn, conversation_id, tag, now)
    if declared != "list":
        log.warning("attribute %r is a %s, not a list: tag %r kept on the conversation", TAGS, declared, tag)
        return
    if change_attributes(conn, customer_id, lambda attributes: with_list_values(attributes, TAGS, [tag]), now):
        add_events(conn, [event_row(customer_id, "tag.added", {"tag": tag}, at=now, campaign_id=campaign_id)])
