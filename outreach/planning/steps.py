"""One step of one occurrence, planned: the segment streamed from SQL in chunks (each customer with their consent
for the campaign's purpose on the step's channels, joined in the same query), each customer's channel decided
(address, consent, reply window, fallback, frequency cap, shared address), and the chunk's ledger rows
inserted in one transaction (`ON CONFLICT DO NOTHING` on the idempotency key; `COPY` on PostgreSQL) before
their ids go to the broker. `planner` runs it for every step that goes now.

A dry run renders every message (its report is exact: missing data, render errors, SMS segments, samples). A
real run renders only its samples, and its SMS to count their segments (so `run` gives the figure `plan` and
the export give). Each row points at the step's planned content and the worker renders it when it sends it
(see `planned_content`); a customer whose message cannot be rendered is suppressed then, with the same
reason a dry run gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.campaigns.rendering import MissingData, RenderError
from outreach.customers.reachability import unreachable
from outreach.customers.reply_windows import open_windows
from outreach.customers.shared_addresses import REASON as SHARED_ADDRESS
from outreach.customers.shared_addresses import SHAREABLE, others_at, sharing
from outreach.customers.shared_addresses import policy as shared_policy
from outreach.planning.caps import REASON as REASON_CAPPED
from outreach.planning.caps import Cap, planned_counts
from outreach.planning.messages import Composed, StepComposer
from outreach.planning.planned_events import add_planned_events
from outreach.planning.queueing import Transport, enqueue_when_due
from outreach.planning.quiet_hours import SendingHours
from outreach.planning.variants import StepVariants
from outreach.store.database import reading, utcnow
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.ledger import Status, insert_rows, new_row
from outreach.store.schema import consents, customers, deliveries

CHUNK = 1000
# A real run (nothing rendered) writes bigger chunks: fewer transactions and round trips per customer.
CHUNK_UNRENDERED = 5000
# Chunks being written at once on PostgreSQL, each on its own connection and thread, while the next one is
# decided (measured on 2 cores: 1 writer 20,000 rows/s, 2 writers 30,000, 3 writers 31,000). SQLite has one
# writer at a time.
WRITERS = 2
# What deciding a customer's channel reads of their profile; rendering reads the whole profile.
DECIDING_COLUMNS = ("id", "country", "locale", "timezone", *(c for pair in ADDRESS_FIELDS.values() for c in pair))
# At least this many samples, and the first message of every channel, variant and language planned.
SAMPLES = 3
MAX_SAMPLES = 12


@dataclass
class StepPlan:
    step_id: str
    audience: int = 0
    already_planned: int = 0
    planned: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    sms_segments: int = 0
    # Rows that wait for quiet hours or a holiday to end (they have a `not_before`), and by which of the two.
    deferred: int = 0
    deferred_by: Counter[str] = field(default_factory=Counter)
    # A service step's messages (by channel) to customers who said no to marketing there (consent_sms=no):
    # that does not stop a service message (consent_sms_service=no does). Counted by a dry run.
    marketing_declined: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    # For a follow-up step in a preview: who was sent the step before, who is due, skipped (and why) or not
    # yet due (see journeys.previews); None for a step that goes when the campaign runs.
    followup: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_id,
            "audience": self.audience,
            "already_planned": self.already_planned,
            "to_send": sum(self.by_channel.values()),
            "by_channel": dict(self.by_channel),
            "suppressed": dict(self.suppressed),
            "sms_segments": self.sms_segments,
            "deferred": self.deferred,
            "deferred_by": dict(self.deferred_by),
            "marketing_declined": dict(self.marketing_declined),
            "samples": self.samples,
            "followup": self.followup,
        }


@dataclass
class CampaignPlan:
    campaign_id: str
    occurrence: str
    dry_run: bool
    steps: list[StepPlan] = field(default_factory=list)
    row_ids: list[int] = field(default_factory=list)
    # The quiet hours its messages keep, and where they come from: `21:00-08:00 (the quiet_hours setting)`.
    quiet_hours: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "occurrence": self.occurrence,
            "dry_run": self.dry_run,
            "quiet_hours": self.quiet_hours,
            "steps": [s.as_dict() for s in self.steps],
        }


class StepPlanner:
    def __init__(
        self,
        engine: Engine,
        loaded: LoadedCampaign,
        step: Step,
        occurrence: str,
        composer: StepComposer,
        where: sa.ColumnElement[bool],
        dry_run: bool,
    ) -> None:
        self.engine = engine
        self.campaign = loaded.campaign
        self.step = step
        self.occurrence = occurrence
        self.composer = composer
        self.variants = StepVariants(loaded, step, composer)
        self.where = where
        self.dry_run = dry_run
        # A dry run renders every message; a real run leaves that to the worker (rows point at content_id).
        self.render = dry_run
        self.content_id: int | None = None
        self.report = StepPlan(step.id)
        d = deliveries.c
        self.channels = [step.channel] + ([step.fallback] if step.fallback else [])
        self.already = sa.exists().where(
            d.campaign_id == self.campaign.id,
            d.occurrence == occurrence,
            d.step_id == step.id,
            d.customer_id == customers.c.id,
            d.channel.in_(self.channels),
        )
        self.cap: Cap | None = None
        self.windows: set[tuple[str, str]] = set()
        # An answer to a message goes back to the address that wrote, shared or not.
        self.refuse_shared = (
            self.campaign.trigger is None
            and shared_policy(self.campaign.shared_address, self.campaign.purpose, composer.settings) == "suppress"
        )
        # (customer id, channel) -> the other customers who have that address, for the chunk being planned
        self.shared: dict[tuple[str, str], list[str]] = {}
        self.hours: SendingHours | None = None
        # A dry run of a service step notes who said no to marketing on the channel (see marketing_declined).
        self.notes_marketing = dry_run and self.campaign.purpose == "service"
        # Given every row as it is planned (a dry run's recipient list, one customer's preview).
        self.on_row: Callable[[dict[str, Any]], None] | None = None
        # (channel, variant, language) of the samples taken: one of each, so a mixed audience shows each language
        self._sampled: set[tuple[str, str | None, str | None]] = set()
        # (time zone, country) -> (not_before, what holds it), for the chunk being planned (they share one `now`)
        self._not_before: dict[tuple[str | None, str | None], tuple[datetime, str] | None] = {}
        self.expects = (
            {**step.expects.model_dump(exclude_none=True), "attribute": step.expects.attribute_name}
            if step.expects
            else None
        )

    def run(
        self,
        transport: Transport | None,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
        row_ids: list[int],
    ) -> StepPlan:
        with reading(self.engine) as conn:
            total, done = conn.execute(
                sa.select(sa.func.count(), sa.func.count().filter(self.already)).where(self.where)
            ).one()
        self.report.audience, self.report.already_planned = int(total), int(done)
        seen = 0
        chunk_size = CHUNK if self.render else CHUNK_UNRENDERED

        def write(rows: list[dict[str, Any]]) -> None:
            with self.engine.begin() as conn:
                new_rows = self._insert(conn, rows)
            # only once they are committed, or a worker could look for rows it cannot see yet
            if new_rows and transport is not None:
                enqueue_when_due(transport, new_rows, batch_size)
            row_ids.extend(delivery_id for delivery_id, _ in new_rows)

        # One streamed query for the whole segment (not a query per chunk: that would rescan the table each
        # time). A chunk is decided on one connection while the ones before it are written, committed and
        # enqueued by the writer threads, each on its own connection: at most writers + 1 chunks in memory.
        writers = WRITERS if self.engine.dialect.name == "postgresql" else 1
        with reading(self.engine) as reader, ThreadPoolExecutor(writers, thread_name_prefix="plan-writer") as pool:
            writing: list[Future[None]] = []
            result = reader.execution_options(stream_results=True, yield_per=chunk_size).execute(self._audience_query())
            names = list(result.keys())
            for partition in result.partitions(chunk_size):
                chunk = [dict(zip(names, r, strict=True)) for r in partition]
                with self.engine.connect() as conn:
                    rows = self._rows(conn, chunk)
                if len(writing) >= writers:
                    writing.pop(0).result()
                if not self.dry_run:
                    writing.append(pool.submit(write, rows))
                seen += len(chunk)
                if progress:
                    progress(seen, self.report.audience - self.report.already_planned)
            for future in writing:
                future.result()
        row_ids.sort()  # the writers finish their chunks in any order
        return self.report

    def _audience_query(self) -> sa.Select[Any]:
        """The customers still to plan, in id order, each with their consent status for the campaign's purpose
        on each of the step's channels (`consent_<channel>`, None when they never said)."""
        whole = self.render or "sms" in self.channels  # SMS are counted in segments: rendered either way
        columns: list[Any] = list(customers.c) if whole else [customers.c[c] for c in DECIDING_COLUMNS]
        source: Any = customers
        for channel in self.channels:
            given = consents.alias(f"consent_{channel}")
            source = source.outerjoin(
                given,
                sa.and_(
                    given.c.customer_id == customers.c.id,
                    given.c.channel == channel,
                    given.c.purpose == self.campaign.purpose,
                ),
            )
            columns.append(given.c.status.label(f"consent_{channel}"))
            if self.notes_marketing:
                declined = consents.alias(f"marketing_{channel}")
                source = source.outerjoin(
                    declined,
                    sa.and_(
                        declined.c.customer_id == customers.c.id,
                        declined.c.channel == channel,
                        declined.c.purpose == "marketing",
                    ),
                )
                columns.append(declined.c.status.label(f"marketing_{channel}"))
        return sa.select(*columns).select_from(source).where(self.where, ~self.already).order_by(customers.c.id)

    def _rows(self, conn: Connection, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        purpose = self.campaign.purpose
        consents: dict[tuple[str, str], str] = {
            (c["id"], channel): c[f"consent_{channel}"]
            for c in chunk
            for channel in self.channels
            if c[f"consent_{channel}"] is not None
        }
        now = utcnow()
        self._not_before = {}
        self.windows = open_windows(conn, [c["id"] for c in chunk], self.channels, now)
        capped = (
            planned_counts(conn, [c["id"] for c in chunk], self.cap, self.campaign.id, now - self.cap.per)
            if self.cap
            else None
        )
        self.shared = self._shared_addresses(conn, chunk) if self.refuse_shared else {}
        rows = []
        for customer in chunk:
            variant = self.variants.choose(customer["id"])
            channel, reason, detail = self._choose_channel(customer, consents, purpose)
            if reason is None and capped is not None and self.cap and capped[customer["id"]] >= self.cap.max:
                reason, detail = REASON_CAPPED, self.cap.describe(capped[customer["id"]])
            composed: Composed | None = None
            if reason is None and self.render:
                try:
                    composed = self.variants.composer(variant).compose(channel, customer)
                except MissingData as exc:
                    reason, detail = "missing_data", str(exc)
                except RenderError as exc:
                    reason, detail = "render_error", str(exc)
            elif reason is None and channel == "sms":
                # A real run counts every SMS's segments (what the provider bills) as the dry run does; the
                # worker renders it again when it sends it, from the profile as it is then.
                composed = self._counted(customer, channel, variant)
            elif reason is None and self._wants_sample(channel, variant, customer.get("locale")):
                composed = self._sample(conn, customer["id"], channel, variant)
            row = self._row(customer, channel, reason, detail, composed, now, variant)
            if reason is None and self.notes_marketing and customer.get(f"marketing_{channel}") == "revoked":
                self.report.marketing_declined[channel] += 1
            if self.on_row is not None:
                self.on_row(row)
            rows.append(row)
        return rows

    def _wants_sample(self, channel: str, variant: str | None, locale: str | None) -> bool:
        samples = self.report.samples
        kind = (channel, variant, _language(locale))
        return (kind not in self._sampled and len(samples) < MAX_SAMPLES) or len(samples) < SAMPLES

    def _sample(self, conn: Connection, customer_id: str, channel: str, variant: str | None) -> Composed | None:
        """A real run's sample message, rendered as the worker will render it (None if it cannot be: the
        worker will suppress that customer, and the next customer may make the sample)."""
        profile = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().one()
        try:
            return self.variants.composer(variant).compose(channel, dict(profile))
        except RenderError:  # MissingData is a RenderError
            return None

    def _counted(self, customer: Mapping[str, Any], channel: str, variant: str | None) -> Composed | None:
        """A real run's SMS rendered only to be counted (None if it cannot be: the worker will suppress it,
        and a dry run counts it as suppressed too)."""
        try:
            return self.variants.composer(variant).compose(channel, customer)
        except RenderError:  # MissingData is a RenderError
            return None

    def _shared_addresses(self, conn: Connection, chunk: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for channel in self.channels:
            column = SHAREABLE.get(channel)
            if column is None:
                continue
            groups = sharing(conn, column, [c[column] for c in chunk if c.get(column)])
            for customer in chunk:
                others = others_at(groups, column, customer.get(column), customer["id"])
                if others:
                    found[(customer["id"], channel)] = others
        return found

    def _unreachable_on(
        self, customer: Mapping[str, Any], channel: str, consents: Mapping[tuple[str, str], str], purpose: str
    ) -> tuple[str | None, str | None]:
        reason = _unreachable(customer, channel, purpose, consents, self.windows)
        if reason is None and (customer["id"], channel) in self.shared:
            others = self.shared[(customer["id"], channel)]
            return SHARED_ADDRESS, f"{SHAREABLE[channel]} shared with {', '.join(others)}"
        return reason, None

    def _choose_channel(
        self, customer: Mapping[str, Any], consents: Mapping[tuple[str, str], str], purpose: str
    ) -> tuple[str, str | None, str | None]:
        """The channel to use, or the primary channel with the reason nobody can be reached."""
        primary = self.step.channel
        reason, detail = self._unreachable_on(customer, primary, consents, purpose)
        if reason is None:
            return primary, None, None
        fallback = self.step.fallback
        if fallback is not None:
            fallback_reason, fallback_detail = self._unreachable_on(customer, fallback, consents, purpose)
            if fallback_reason is None:
                return fallback, None, None
            explained = f"{fallback} fallback: {fallback_reason}" + (f" ({fallback_detail})" if fallback_detail else "")
            return primary, reason, (f"{detail}; " if detail else "") + explained
        return primary, reason, detail

    def _row(
        self,
        customer: Mapping[str, Any],
        channel: str,
        reason: str | None,
        detail: str | None,
        composed: Composed | None,
        now: datetime,
        variant: str | None,
    ) -> dict[str, Any]:
        report = self.report
        address = customer.get(ADDRESS_FIELDS[channel][0]) if channel in ADDRESS_FIELDS else None
        not_before = None
        if self.hours is not None and reason is None:
            place = (customer.get("timezone"), customer.get("country"))
            if place not in self._not_before:
                self._not_before[place] = self.hours.hold(now, *place)
            held = self._not_before[place]
            if held is not None:
                not_before = held[0]
                report.deferred += 1
                report.deferred_by[held[1]] += 1
        if reason is not None:
            report.suppressed[reason] += 1
        else:
            report.by_channel[channel] += 1
        if composed is not None and reason is None:
            report.sms_segments += composed.sms_segments or 0
            if self._wants_sample(channel, variant, customer.get("locale")):
                self._sampled.add((channel, variant, _language(customer.get("locale"))))
                report.samples.append(
                    {
                        "customer": customer["id"],
                        "channel": channel,
                        "variant": variant,
                        "locale": customer.get("locale"),
                        "to": address,
                        "subject": composed.subject,
                        "body": composed.body,
                        "sms_segments": composed.sms_segments,
                    }
                )
        going = reason is None
        rendered = composed if self.render else None
        return new_row(
            campaign_id=self.campaign.id,
            occurrence=self.occurrence,
            step_id=self.step.id,
            customer_id=customer["id"],
            channel=channel,
            purpose=self.campaign.purpose,
            address=address,
            now=now,
            suppressed=(reason, detail) if reason else None,
            subject=rendered.subject if rendered else None,
            body=rendered.body if rendered else None,
            html=rendered.html if rendered else None,
            headers=rendered.headers if rendered and rendered.headers else None,
            sms_segments=rendered.sms_segments if rendered else None,
            content_id=self.content_id if going and not self.render else None,
            expects=self.expects if going else None,
            variant=variant,
            not_before=not_before,
        )

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> list[tuple[int, datetime | None]]:
        """Insert the chunk's rows; those another run already wrote are skipped. Returns the ids to enqueue,
        each with the moment before which it may not go (quiet hours, holidays) or None."""
        if not rows:
            return []
        inserted = insert_rows(conn, rows)
        by_key = {r["idempotency_key"]: r for r in rows}
        written = [(delivery_id, by_key[key]) for delivery_id, key, _status in inserted]
        add_planned_events(conn, written)
        queued = [(delivery_id, row["not_before"]) for delivery_id, row in written if row["status"] == Status.QUEUED]
        return sorted(queued)


def _language(locale: str | None) -> str | None:
    """`zh-CN`, `zh_CN` and `zh` are one language for samples."""
    return locale.replace("_", "-").split("-")[0].lower() if locale else None


def _unreachable(
    customer: Mapping[str, Any],
    channel: str,
    purpose: str,
    consents: Mapping[tuple[str, str], str],
    windows: set[tuple[str, str]],
) -> str | None:
    """Why `channel` cannot be used for this customer, or None when it can."""
    key = (customer["id"], channel)
    return unreachable(customer, channel, purpose, consents.get(key), window_open=key in windows)
