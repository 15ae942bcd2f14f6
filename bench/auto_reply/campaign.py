"""The campaign under test, campaigns/complaint-ack.yaml: the reply it must send, once the texts the benchmark
posts are checked against its trigger."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from ruamel.yaml import YAML

from bench.auto_reply.pushes import COMPLAINTS, PLAIN

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN_FILE = ROOT / "campaigns" / "complaint-ack.yaml"
CAMPAIGN_ID = "complaint-ack"


def expected_reply() -> Callable[[str], str]:
    """The WeChat text the campaign's first step renders for a customer's name. Raises RuntimeError unless every
    complaint and no plain text matches the campaign's trigger."""
    campaign: dict[str, Any] = YAML(typ="safe").load(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    trigger = re.compile(campaign["trigger"]["inbound"]["match"], re.IGNORECASE)
    for text in PLAIN:
        if trigger.search(text):
            raise RuntimeError(f"the plain text {text!r} matches the trigger {trigger.pattern!r}")
    for text in COMPLAINTS:
        if not trigger.search(text):
            raise RuntimeError(f"the complaint {text!r} does not match the trigger {trigger.pattern!r}")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        campaign["steps"][0]["content"]["wechat"]
    )
    return lambda name: template.render(name=name)
