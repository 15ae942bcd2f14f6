"""A test send (`outreach campaigns test-send`): one step's message, rendered for a real customer, sent for
real to an address of the bank's own (the marketer's mailbox, a test phone) through the ledger and the
workers, exactly as a run would send it.

Its ledger row is marked as a test: its campaign is `test:<campaign id>` (so no report, follow-up or
frequency cap of the campaign counts it) and its purpose `internal` (it goes to staff, so the customer's
consent is not asked). The email subject starts with `[TEST]`, and the unsubscribe link and headers point
to a link that unsubscribes nobody: whoever clicks it in the test message must not opt the customer out.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.campaigns.rendering import MissingData, RenderError
from outreach.channels.base import CHANNELS
from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.customers.contacts import normalize_email, normalize_phone
from outreach.customers.profiles import attribute_catalog, get_customer
from outreach.customers.provisional import is_provisional
from outreach.customers.unsubscribe import make_token, signing_key, unsubscribe_url
from outreach.planning.messages import StepComposer
from outreach.planning.planner import campaign_segment
from outreach.planning.variants import StepVariants
from outreach.segments.syntax import SegmentError
from outreach.store import audit
from outreach.store.database import utcnow
from outreach.store.ledger import INTERNAL, new_row, queue_one
from outreach.store.rows import CustomerRow
from outreach.store.schema import customers

PREFIX = "test:"
SUBJECT_MARK = "[TEST] "
# Where a test message's unsubscribe link leads: a link that matches no customer.
DEAD_LINK = "test-send"
SENDABLE = CHANNELS


def test_campaign_id(campaign_id: str) -> str:
    """The ledger's campaign id of a campaign's test sends (the column holds 64 characters)."""
    return (PREFIX + campaign_id)[:64]


@dataclass(frozen=True)
class TrialSend:
    delivery_id: int
    campaign_id: str
    step_id: str
    channel: str
    customer_id: str
    to: str
    variant: str | None


def _step(loaded: LoadedCampaign, step_id: str | None) -> Step:
    if step_id is None:
        return loaded.campaign.steps[0]
    for step in loaded.campaign.steps:
        if step.id == step_id:
            return step
    known = ", ".join(s.id for s in loaded.campaign.steps)
    raise InputError.single("--step", f"{step_id!r} is not a step of {loaded.id} (its steps: {known})")


def _channel(loaded: LoadedCampaign, step: Step, channel: str | None) -> str:
    written = [c for c in loaded.templates[step.id] if c in SENDABLE]
    if channel is None:
        if step.channel in written:
            return step.channel
        raise InputError.single("--channel", f"step {step.id} answers on `{step.channel}`: name one of {written}")
    if channel not in written:
        raise InputError.single("--channel", f"step {step.id} has no {channel} message (it has {', '.join(written)})")
    return channel


def _address(channel: str, raw: str) -> str:
    if channel == "email":
        address, problem = normalize_email(raw)
    elif channel in ("sms", "whatsapp"):
        address, problem = normalize_phone(raw, None)
        if problem and not raw.strip().startswith("+"):
            problem = f"phone {raw!r}: write the test number in international form, +CC..."
    else:
        address, problem = raw.strip(), None if raw.strip() else "an OpenID is needed"
    if problem:
        raise InputError.single("--to", problem)
    return address


def _customer(engine: Engine, loaded: LoadedCampaign, settings: Settings, customer_id: str | None) -> CustomerRow:
    if customer_id is not None:
        with engine.connect() as conn:
            found = get_customer(conn, customer_id)
        if found is None:
            raise InputError.single("--as", f"no customer {customer_id!r} (see `outreach customers list`)")
        return found
    with engine.connect() as conn:
        catalog = attribute_catalog(conn)
    # (one connection at a time: on SQLite an open one holds the write lock)
    try:
        text = loaded.campaign.segment or "True"
        segment = campaign_segment(engine, loaded, settings, text, catalog, utcnow().date())
    except SegmentError as exc:
        raise InputError.single(str(loaded.path), f"segment: {exc.message}") from None
    with engine.connect() as conn:
        first = conn.execute(
            sa.select(customers.c.id).where(segment, ~is_provisional()).order_by(customers.c.id).limit(1)
        ).scalar()
        found = get_customer(conn, first) if first is not None else None
    if found is None:
        raise InputError.single("--as", f"the segment of {loaded.id} holds nobody: name a customer with --as")
    return found


def send_test(
    engine: Engine,
    loaded: LoadedCampaign,
    settings: Settings,
    to: str,
    *,
    customer_id: str | None = None,
    step_id: str | None = None,
    channel: str | None = None,
    variant: str | None = None,
    actor: str,
) -> TrialSend:
    """Write the test message into the ledger as `queued`; the caller hands its id to the workers."""
    step = _step(loaded, step_id)
    channel = _channel(loaded, step, channel)
    address = _address(channel, to)
    customer = _customer(engine, loaded, settings, customer_id)
    key = signing_key(engine, settings)
    variants = StepVariants(loaded, step, StepComposer(loaded.campaign, step, loaded.templates[step.id], settings, key))
    if variant is not None and step.variants is None:
        raise InputError.single("--variant", f"step {step.id} has no variants")
    if variant is not None and variant not in {v.id for v in step.variants or []}:
        raise InputError.single(
            "--variant", f"{variant!r}: the variants of step {step.id} are {[v.id for v in step.variants or []]}"
        )
    chosen = variant if variant is not None else variants.choose(customer["id"])
    try:
        composed = variants.composer(chosen).compose(channel, customer)
    except (MissingData, RenderError) as exc:
        raise InputError.single(str(loaded.path), f"step {step.id} for {customer['id']}: {exc}") from None
    real_link = unsubscribe_url(
        settings.public_url, make_token(key, str(customer["id"]), channel, loaded.campaign.purpose)
    )
    dead_link = unsubscribe_url(settings.public_url, DEAD_LINK)

    def defused(text: str | None) -> str | None:
        return text.replace(real_link, dead_link) if text is not None else None

    now = utcnow()
    campaign_id = test_campaign_id(loaded.id)
    occurrence = f"test-{now:%Y%m%dT%H%M%S.%f}"
    row = new_row(
        campaign_id=campaign_id,
        occurrence=occurrence,
        step_id=step.id,
        customer_id=customer["id"],
        channel=channel,
        purpose=INTERNAL,
        address=address,
        now=now,
        subject=SUBJECT_MARK + composed.subject if composed.subject is not None else None,
        body=defused(composed.body),
        html=defused(composed.html),
        headers={k: str(defused(v)) for k, v in composed.headers.items()} or None,
        sms_segments=composed.sms_segments,
        variant=chosen,
    )
    data = {"step": step.id, "channel": channel, "to": address, "by": actor, "campaign": loaded.id, "test": True}
    with engine.begin() as conn:
        delivery_id = queue_one(conn, row, "delivery.test", data, now)
        audit.record(
            conn,
            actor,
            "test-send",
            target=loaded.id,
            rows=1,
            detail={"to": address, "customer": customer["id"]},
            at=now,
        )
    return TrialSend(delivery_id, campaign_id, step.id, channel, str(customer["id"]), address, chosen)
