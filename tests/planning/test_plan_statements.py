"""A guard against planning that grows faster than its audience: the SQL statements of plans of 3, 6 and 9
chunks are counted, and each further chunk must cost the same number. No clock is read."""

from __future__ import annotations

from typing import Any

import pytest

from outreach.planning import steps
from outreach.planning.planner import plan_campaign
from tests.customers.test_import_statements import counted

CHUNK = 20
CAMPAIGN = """
id: letter-{size}
name: Letter
purpose: service
segment: "age < {size}"
steps:
  - id: send
    channel: email
    fallback: sms
    content:
      email: {{subject: "For {{{{ name }}}}", text: "Hello {{{{ name }}}}"}}
      sms: "Hello {{{{ name }}}}"
"""


def test_each_chunk_of_a_plan_costs_the_same_statements(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    p = pipeline
    customers = 9 * CHUNK
    # every seventh shares its email with the one before, so the shared-address check finds something
    p.import_csv(
        "id,name,email,phone,country,consent_email,consent_sms,age\n"
        + "".join(
            f"c{i:04d},Customer {i},u{i - 1 if i % 7 == 6 else i}@example.com,+86138000{i:05d},CN,yes,yes,{i}\n"
            for i in range(customers)
        )
    )
    monkeypatch.setattr(steps, "CHUNK_UNRENDERED", CHUNK)
    totals = {}
    for chunks in (3, 6, 9):
        loaded = p.load(p.campaign(CAMPAIGN.format(size=chunks * CHUNK), f"letter-{chunks}.yaml"))
        with counted(p.engine) as statements:
            plan = plan_campaign(p.engine, loaded, p.settings, dry_run=False, transport=p.handle.transport)
        assert plan.row_ids and len(plan.row_ids) == chunks * CHUNK
        totals[chunks] = len(statements)
    assert totals[6] - totals[3] == totals[9] - totals[6] > 0, totals
