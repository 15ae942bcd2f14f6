"""The JSON Schema of campaign files, for editors: with `# yaml-language-server: $schema=...` at the top of a
campaign (VS Code's YAML extension, any editor speaking the YAML language server) keys autocomplete and
mistakes are underlined as you type.

It is made from the same model `outreach campaigns validate` checks against, so it cannot drift; the copy
in the repository (`docs/campaign.schema.json`) is compared with it by the tests. The schema checks the
shape of a file; `validate` still checks what a schema cannot (segments and templates against the
customers' fields, durations, time zones).
"""

from __future__ import annotations

import json
from typing import Any

from outreach.campaigns.model import Campaign

SCHEMA_ID = "https://outreach.invalid/campaign.schema.json"
DURATION = r"^\s*(\d+\s*[smhdw]\s*)+$"

# What an editor shows beside a key (model name, field name) -> text.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Campaign", "id"): "The campaign's id: lower-case letters, digits and -. The ledger keys every message on it.",
    ("Campaign", "name"): "A name for people.",
    ("Campaign", "purpose"): "service (account notices, surveys: no marketing consent needed, opt-outs kept) or "
    "marketing (needs the customer's consent on the channel; carries the opt-out).",
    ("Campaign", "segment"): "Who gets it: an expression over customer fields, e.g. "
    "\"status == 'active' and card_due_date == days_from_now(3)\".",
    ("Campaign", "schedule"): "When it runs: {cron: ...}, {every: 6h} or {at: ...}, with a timezone.",
    ("Campaign", "trigger"): "Answer customers' messages instead of running for a segment.",
    ("Campaign", "quiet_hours"): "Hours in the customer's time zone when nothing is sent, e.g. "
    "{start: '21:00', end: '08:00'}; off for urgent service messages. Default: the quiet_hours setting "
    "(21:00-08:00) for marketing and surveys, quiet_hours_service (none) for other service campaigns.",
    ("Campaign", "frequency_cap"): "At most `max` messages per `per` to one customer (marketing: all marketing "
    "campaigns count; service: this campaign's own messages).",
    ("Campaign", "throttle"): "At most this many messages of the campaign per second, minute or hour: 50/s.",
    ("Campaign", "on_unknown"): "A message whose outcome is unknown after a crash: hold it for an operator "
    "(default) or resend it.",
    ("Campaign", "shared_address"): "Send to an address another customer also has (send) or not (suppress). "
    "Default: suppress for service, send for marketing.",
    ("Campaign", "tag"): "A tag put on the customers' conversations (trigger campaigns).",
    ("Campaign", "steps"): "The messages: the first step(s) when the campaign runs, then follow-ups with `after`.",
    ("Step", "id"): "The step's id, unique in the campaign.",
    ("Step", "channel"): "The channel: email, sms, whatsapp, wechat (reply: the channel the customer wrote on).",
    ("Step", "fallback"): "The channel used when the customer cannot be reached on `channel`.",
    ("Step", "content"): "Inline templates (Jinja2) per channel.",
    ("Step", "template"): "Template files under templates/: NAME.subject.j2, .txt.j2, .html.j2, .sms.j2.",
    ("Step", "variants"): "An A/B test: two or more variants with weights, each with its content or template.",
    ("Step", "after"): "A follow-up: how long after the previous step, e.g. 3d.",
    ("Step", "unless"): "Skip the follow-up if the customer replied, the message was delivered, or they opted out.",
    ("Step", "only_if"): "Send the follow-up only to customers for whom this segment expression is true then.",
    ("Step", "expects"): "Read replies as survey answers (nps, csat) or keywords, kept on the profile.",
}
DURATION_FIELDS = {("Step", "after"), ("FrequencyCap", "per"), ("Expects", "within"), ("Schedule", "every")}


def campaign_json_schema() -> dict[str, Any]:
    schema = Campaign.model_json_schema()
    models = {"Campaign": schema, **schema.get("$defs", {})}
    for (model, name), text in DESCRIPTIONS.items():
        models[model]["properties"][name]["description"] = text
    for model, name in DURATION_FIELDS:
        field = models[model]["properties"][name]
        for option in field.get("anyOf", [field]):
            if option.get("type") == "string":
                option["pattern"] = DURATION
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "outreach campaign",
        "description": "A campaign file of outreach: who, what, when and under which rules. "
        "`outreach campaigns validate FILE` checks everything this schema checks and more.",
    }


def schema_text() -> str:
    return json.dumps(campaign_json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
