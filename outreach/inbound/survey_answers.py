"""Survey answers: a reply read against the question the customer was last asked, kept on their profile.

A step that declares `expects:` stores that expectation on each ledger row it writes. When the customer
replies, the latest such row sent to them is the question; if it was sent within its window (the step's
`within`, else the `survey_window` setting) and the reply parses as an answer, the answer goes to the
profile attribute the campaign named (so segments can use it: `nps_score <= 6`) and onto the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.campaigns.model import SURVEY_SCALES
from outreach.core.durations import parse_duration
from outreach.core.settings import Settings
from outreach.customers.profiles import change_attributes, declare_attributes
from outreach.inbound.keywords import parse_choice, parse_score
from outreach.store.events import add_events, event_row
from outreach.store.fields import AttributeType
from outreach.store.ledger import Status
from outreach.store.schema import deliveries

ANSWERED_STATES = (Status.SENT, Status.DELIVERED)


@dataclass(frozen=True)
class Question:
    """The message a customer's reply may be answering, and what it asked."""

    delivery_id: int
    campaign_id: str
    step_id: str
    channel: str
    expects: dict[str, Any]

    def read(self, text: str) -> int | str | None:
        """The answer in `text`, or None when it is not one."""
        survey = self.expects.get("survey")
        if survey in SURVEY_SCALES:
            low, high = SURVEY_SCALES[survey]
            return parse_score(text, low, high)
        keywords = self.expects.get("keywords")
        return parse_choice(text, keywords) if isinstance(keywords, dict) else None

    @property
    def attribute(self) -> str:
        return str(self.expects["attribute"])


def open_question(conn: Connection, customer_id: str, now: datetime, settings: Settings) -> Question | None:
    """The latest question sent to the customer, if it is still within its window."""
    d = deliveries.c
    row = conn.execute(
        sa.select(d.id, d.campaign_id, d.step_id, d.channel, d.expects, d.sent_at)
        .where(d.customer_id == customer_id, d.expects.is_not(None), d.status.in_(list(ANSWERED_STATES)))
        .order_by(d.sent_at.desc(), d.id.desc())
        .limit(1)
    ).first()
    if row is None or row.sent_at is None or not isinstance(row.expects, dict):
        return None
    window = parse_duration(str(row.expects.get("within") or settings.survey_window))
    if now - row.sent_at > window:
        return None
    return Question(row.id, row.campaign_id, row.step_id, row.channel, row.expects)


def record_answer(
    conn: Connection, customer_id: str, question: Question, answer: int | str, text: str, now: datetime
) -> None:
    """Store the answer on the profile attribute, mark the question replied, and add the timeline event."""
    attribute = question.attribute
    change_attributes(conn, customer_id, lambda attributes: {**attributes, attribute: answer}, now)
    kind: AttributeType = "number" if isinstance(answer, int) else "string"
    declare_attributes(conn, {attribute: kind})
    mark_replied(conn, question.delivery_id, now)
    survey = question.expects.get("survey") or "keywords"
    add_events(
        conn,
        [
            event_row(
                customer_id,
                "survey.answered",
                {"survey": survey, "answer": answer, "attribute": attribute, "step": question.step_id, "text": text},
                at=now,
                delivery_id=question.delivery_id,
                campaign_id=question.campaign_id,
            )
        ],
    )


def mark_replied(conn: Connection, delivery_id: int, now: datetime) -> None:
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.replied_at.is_(None))
        .values(replied_at=now, updated_at=now)
    )
