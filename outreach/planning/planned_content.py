"""A step's content as a run planned it, kept in the store so that workers render each row when they send it.

Planning a million customers cannot afford to render a million messages and write gigabytes of bodies before
the first one leaves. So a real run writes each step's templates once (every variant, channel and
translation, as the run read them) into `planned_contents`, and each ledger row only points at them
(`content_id`). The worker that sends a row renders it from exactly that content and the customer's profile,
writes the rendered subject, body, html and headers onto the row, and only then hands the message to the
provider: the ledger still holds exactly what was sent (see `outreach.delivery.content_at_send`). Later edits
of the campaign's files change nothing already planned. A dry run renders every message, as before.

Identical content is stored once: a row's `digest` is the sha256 of its payload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.campaigns.loading import LoadedCampaign
from outreach.campaigns.model import Step
from outreach.campaigns.rendering import TemplateText
from outreach.campaigns.templates import ChannelTemplates
from outreach.core.settings import Settings
from outreach.planning.messages import StepComposer
from outreach.store.database import insert_ignoring_duplicates, utcnow
from outreach.store.schema import planned_contents

Payload = dict[str, Any]


@dataclass(frozen=True)
class CampaignCopy:
    """The campaign's fields that templates and composing read."""

    id: str
    name: str
    purpose: str


@dataclass(frozen=True)
class StepCopy:
    id: str
    channel: str


def step_payload(loaded: LoadedCampaign, step: Step) -> Payload:
    """What renders this step's rows: the campaign's and step's fields, the templates of each channel (and of
    each variant), with their translations."""
    campaign = loaded.campaign
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "purpose": campaign.purpose},
        "step": {"id": step.id, "channel": step.channel},
        "templates": _channels(loaded.templates[step.id]),
        "variants": {v: _channels(t) for v, t in sorted(loaded.variant_templates.get(step.id, {}).items())},
    }


def record_content(conn: Connection, payload: Payload) -> int:
    """The id of this content in `planned_contents`, written if it is not there yet."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    conn.execute(
        insert_ignoring_duplicates(conn, planned_contents).values(
            digest=digest,
            campaign_id=payload["campaign"]["id"],
            step_id=payload["step"]["id"],
            payload=payload,
            created_at=utcnow(),
        )
    )
    found = conn.execute(sa.select(planned_contents.c.id).where(planned_contents.c.digest == digest)).scalar_one()
    return int(found)


def load_payloads(conn: Connection, ids: Iterable[int]) -> dict[int, Payload]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(planned_contents.c.id, planned_contents.c.payload).where(planned_contents.c.id.in_(wanted))
    )
    return {int(i): dict(p) for i, p in rows}


class PlannedComposers:
    """The composers of one planned content: one per variant (None: the step without variants)."""

    def __init__(self, payload: Payload, settings: Settings, signing_key: bytes) -> None:
        campaign = CampaignCopy(**payload["campaign"])
        step = StepCopy(**payload["step"])
        self.default = StepComposer(campaign, step, _templates(payload["templates"]), settings, signing_key)
        self.variants = {
            variant: StepComposer(campaign, step, _templates(channels), settings, signing_key, variant=variant)
            for variant, channels in payload["variants"].items()
        }

    def composer(self, variant: str | None) -> StepComposer:
        if variant is None:
            return self.default
        found = self.variants.get(variant)
        if found is None:
            raise KeyError(f"variant {variant!r} is not in the planned content")
        return found


def _channels(templates: Mapping[str, ChannelTemplates]) -> dict[str, Any]:
    return {
        channel: {
            "parts": {part: _text(t) for part, t in found.parts.items()},
            "translations": {
                tag: {part: _text(t) for part, t in parts.items()} for tag, parts in found.translations.items()
            },
            "fallback": found.fallback,
        }
        for channel, found in sorted(templates.items())
    }


def _text(template: TemplateText) -> dict[str, Any]:
    return {"text": template.text, "path": template.path, "html": template.html}


def _templates(channels: Mapping[str, Any]) -> dict[str, ChannelTemplates]:
    return {
        channel: ChannelTemplates(
            channel,
            {part: _source(t) for part, t in found["parts"].items()},
            {tag: {part: _source(t) for part, t in parts.items()} for tag, parts in found["translations"].items()},
            found["fallback"],
        )
        for channel, found in channels.items()
    }


def _source(saved: Mapping[str, Any]) -> TemplateText:
    # The file positions of the planned text are no longer needed: it was checked when the run was planned.
    return TemplateText(saved["text"], saved["path"], _no_position, bool(saved["html"]))


def _no_position(line: int) -> tuple[int, int | None]:
    return line, None
