"""What an operator reads after a survey: `outreach report` with delivered, replied, opted out and NPS per
step, and `outreach customers show` with consents and the whole timeline in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from outreach.web.twilio_hooks import INBOUND_PATH
from tests.pipeline import Pipeline
from tests.web_server import WebServer

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,phone,country,locale,consent_sms
    n1,Ann,+14155550201,US,en,yes
    n2,Ben,+14155550202,US,en,yes
    n3,Cao,+14155550203,US,en,yes
    n4,Dee,+14155550204,US,en,yes
    n5,Eve,+14155550205,US,en,yes
"""

SURVEY = """
    id: nps-q4
    name: Q4 survey
    purpose: service
    steps:
      - id: ask
        channel: sms
        expects: {survey: nps}
        content:
          sms: "{{ name }}, how likely are you to recommend us (0-10)?"
      - id: product
        channel: sms
        expects: {keywords: {"1": interested, "2": not_now}, attribute: card_interest}
        content:
          sms: "{{ name }}, interested in our new card? 1 = yes, 2 = not now"
"""


def cli(p: Pipeline, *args: str) -> Any:
    env = {**os.environ, "OUTREACH_DATABASE_URL": p.settings.database_url, "OUTREACH_CONFIG": "/nonexistent"}
    done = subprocess.run([OUTREACH, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_report_and_profile_after_a_survey(pipeline: Pipeline, web: WebServer, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    loaded = p.load(p.campaign(SURVEY))
    from outreach.planning.planner import plan_campaign

    # the NPS question first, answered, then the keyword question
    p.handle.start_worker(2)
    plan_campaign(
        p.engine,
        loaded,
        p.settings,
        "q4",
        dry_run=False,
        transport=p.handle.transport,
        steps=[loaded.campaign.steps[0]],
    )
    p.deliver_queued()
    for phone, _ in [("+14155550201", 0), ("+14155550202", 0)]:
        [sms] = twilio_server.sent_to(phone)
        twilio_server.report_status(sms["sid"], "delivered")
    inbound = web.url(INBOUND_PATH)
    for phone, text in [
        ("+14155550201", "10"),
        ("+14155550202", "9"),
        ("+14155550203", "3"),
        ("+14155550204", "STOP"),
        ("+14155550205", "call me please"),
    ]:
        assert twilio_server.send_inbound(inbound, phone, text).status_code == 200
    twilio_server.send_inbound(inbound, "+14155550203", "5")  # changed their mind: the last answer counts

    plan_campaign(
        p.engine,
        loaded,
        p.settings,
        "q4",
        dry_run=False,
        transport=p.handle.transport,
        steps=[loaded.campaign.steps[1]],
    )
    p.deliver_queued()
    for phone, text in [("+14155550201", "1"), ("+14155550202", "２"), ("+14155550203", "1")]:
        twilio_server.send_inbound(inbound, phone, text)

    report = cli(p, "report", "nps-q4", "--json")
    assert report["funnel"]["delivered"] == 2
    assert report["funnel"]["replied"] == 4 + 3  # ask: n1, n2, n3 and n5 (a plain reply); product: n1-n3
    by_step = {r["step"]: r for r in report["by_step"]}
    assert by_step["ask"]["replied"] == 4  # n1, n2, n3 answered, n5 replied
    assert by_step["ask"]["opted_out"] == 1  # n4
    assert by_step["ask"]["delivered"] == 2
    surveys = {s["step"]: s for s in report["surveys"]}
    # answers 10, 9, 5: two promoters, one detractor -> NPS (2 - 1) / 3 = +33.3
    assert surveys["ask"] == {
        "step": "ask",
        "survey": "nps",
        "answers": 3,
        "nps": 33.3,
        "promoters": 2,
        "passives": 0,
        "detractors": 1,
    }
    assert surveys["product"]["counts"] == {"interested": 2, "not_now": 1}

    profile = cli(p, "customers", "show", "n3", "--json")
    assert profile["customer"]["attributes"]["nps_score"] == 5
    assert profile["customer"]["attributes"]["card_interest"] == "interested"
    kinds = [e["kind"] for e in profile["timeline"]]
    assert kinds[0] == "profile.created"
    assert kinds.index("delivery.planned") < kinds.index("delivery.sent") < kinds.index("survey.answered")
    assert kinds.count("survey.answered") == 3
    assert [e["at"] for e in profile["timeline"]] == sorted(e["at"] for e in profile["timeline"])

    stopped = cli(p, "customers", "show", "n4", "--json")
    [revoked] = [c for c in stopped["consents"] if c["purpose"] == "marketing"]
    assert (revoked["status"], revoked["source"]) == ("revoked", "sms:keyword STOP")
    assert "consent.revoked" in [e["kind"] for e in stopped["timeline"]]
