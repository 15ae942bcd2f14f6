"""`outreach failures list / show` and the report per step, as an operator sees them: real failures made by the
Twilio-like server (21211, 21610, 500s until the row is dead) and the SMTP server (550), then the real CLI in a
subprocess against the same store, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outreach.store.database import shift_clock
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from tests.workdir import Workdir

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,phone,country,email,locale,consent_sms,consent_email,status,grp
    f1,Ann,+14155550201,US,,en,yes,,active,a
    f2,Ben,+14155550202,US,,en,yes,,active,a
    f3,Cat,,US,cat@example.com,en,,yes,active,a
    f4,Dan,+14155550204,US,dan@example.com,en,yes,yes,active,a
    f5,Eve,+14155550205,US,,en,yes,,active,b
    f6,Fay,+14155550206,US,,en,yes,,active,a
"""

PROMO = """
    id: promo
    name: Promotion
    purpose: marketing
    segment: "grp == 'a'"
    steps:
      - id: offer
        channel: sms
        fallback: email
        content:
          sms: "{{ name }}, a new savings product."
          email:
            subject: "{{ name }}, a new savings product"
            text: "Dear {{ name }}, our new savings product is here."
"""

NOTICE = """
    id: notice
    name: Service notice
    purpose: service
    segment: "grp == 'b'"
    steps:
      - id: alert
        channel: sms
        content:
          sms: "{{ name }}, your card was renewed."
"""


@pytest.fixture
def pipeline_overrides() -> dict[str, Any]:
    """Two attempts per message, so that transient errors soon make a row dead."""
    return {"max_attempts": 2}


@pytest.fixture
def failed(pipeline: Pipeline, smtp_server: SmtpServer, twilio_server: Any) -> Pipeline:
    """Five failures: `notice` died three days ago (two 500s), `promo` failed just now with 21211 (twice), 21610
    and an SMTP 550; Dan's message went."""
    p = pipeline
    p.import_csv(CUSTOMERS)
    shift_clock(-timedelta(days=3))
    try:
        twilio_server.fail_next(2, 20500)
        p.run(p.campaign(NOTICE, "notice.yaml"))
    finally:
        shift_clock(timedelta(0))
    twilio_server.reject("+14155550201", 21211)
    twilio_server.reject("+14155550206", 21211)
    twilio_server.reject("+14155550202", 21610)
    smtp_server.handler.behaviour.rcpt_replies["cat@example.com"] = "550 5.1.1 <cat@example.com>: No such user"
    p.run(p.campaign(PROMO, "promo.yaml"))
    statuses = {r["customer_id"]: r["status"] for r in p.rows()}
    assert statuses == {"f1": "failed", "f2": "failed", "f3": "failed", "f4": "sent", "f5": "dead", "f6": "failed"}
    return p


def cli(folder: Path, database_url: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(
        OUTREACH_CONFIG=str(folder / "none.toml"),
        OUTREACH_DATABASE_URL=database_url,
        OUTREACH_SECRET_KEY="cli-test-key",
        COLUMNS="240",
        **extra_env,
    )
    return subprocess.run([OUTREACH, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def run(p: Pipeline, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    result = cli(p.folder, p.settings.database_url, *args, **extra_env)
    assert result.returncode == 0, result.stderr
    return result


def listed(p: Pipeline, *filters: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(p, "failures", "list", *filters, "--json").stdout)
    return data


def customers_of(data: dict[str, Any]) -> set[str]:
    return {row["customer"] for row in data["rows"]}


def test_list_groups_by_error_code_then_rows(failed: Pipeline) -> None:
    data = listed(failed)
    assert set(data) == {"filter", "groups", "rows", "total"}
    assert data["total"] == 5
    assert (data["groups"][0]["error_code"], data["groups"][0]["count"]) == ("21211", 2)
    groups = {g["error_code"]: g for g in data["groups"]}
    assert {code: g["count"] for code, g in groups.items()} == {"21211": 2, "21610": 1, "550": 1, "20500": 1}
    assert "not a valid phone number" in groups["21211"]["sample_message"]
    assert "No such user" in groups["550"]["sample_message"]
    assert groups["20500"]["statuses"] == {"dead": 1} and groups["550"]["channels"] == {"email": 1}

    rows = {row["customer"]: row for row in data["rows"]}
    assert set(rows) == {"f1", "f2", "f3", "f5", "f6"}
    dead = rows["f5"]
    assert set(dead) == {
        "id", "campaign", "occurrence", "step", "customer", "channel", "status", "attempts", "error_code",
        "error_message", "updated_at",
    }  # fmt: skip
    assert (dead["campaign"], dead["occurrence"], dead["step"], dead["channel"]) == ("notice", "manual", "alert", "sms")
    assert (dead["status"], dead["attempts"], dead["error_code"]) == ("dead", 2, "20500")
    assert [row["customer"] for row in data["rows"]][-1] == "f5"  # the latest change first: f5 died days ago
    assert (rows["f3"]["channel"], rows["f3"]["error_code"]) == ("email", "550")

    text = run(failed, "failures", "list").stdout
    assert text.index("by error code") < text.index("deliveries")
    group_line = next(line for line in text.splitlines() if line.startswith("│ 21211 "))
    assert group_line.split("│")[2].strip() == "2" and "error 21211" in group_line
    dead_line = next(line for line in text.splitlines() if " f5 " in line)
    for shown in ("notice", "alert", "sms", "dead", "20500"):
        assert shown in dead_line


def test_every_filter_narrows_the_selection(failed: Pipeline) -> None:
    p = failed
    four_days_ago = (datetime.now(UTC) - timedelta(days=4)).date().isoformat()
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    cases: list[tuple[list[str], set[str]]] = [
        (["--campaign", "notice"], {"f5"}),
        (["--campaign", "promo", "--occurrence", "manual"], {"f1", "f2", "f3", "f6"}),
        (["--step", "offer"], {"f1", "f2", "f3", "f6"}),
        (["--channel", "email"], {"f3"}),
        (["--status", "dead"], {"f5"}),
        (["--status", "failed", "--status", "unknown"], {"f1", "f2", "f3", "f6"}),
        (["--status", "unknown"], set()),
        (["--error-code", "21211"], {"f1", "f6"}),
        (["--customer", "f2"], {"f2"}),
        (["--since", "1d"], {"f1", "f2", "f3", "f6"}),
        (["--until", "2d"], {"f5"}),
        (["--since", four_days_ago, "--until", in_an_hour], {"f1", "f2", "f3", "f5", "f6"}),
        (["--campaign", "promo", "--channel", "sms", "--error-code", "21610"], {"f2"}),
    ]
    for filters, expected in cases:
        data = listed(p, *filters)
        assert customers_of(data) == expected, filters
        assert data["total"] == len(expected) == sum(g["count"] for g in data["groups"]), filters
    limited = listed(p, "--limit", "2")
    assert len(limited["rows"]) == 2 and limited["total"] == 5
    assert sum(g["count"] for g in limited["groups"]) == 5
    assert "2 of 5" in run(p, "failures", "list", "--limit", "2").stdout
    assert listed(p, "--status", "dead")["filter"]["statuses"] == ["dead"]


def test_bad_filter_values_exit_2_naming_the_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    bad = cli(
        tmp_path, url, "failures", "list", "--status", "sent", "--channel", "fax", "--since", "yesterday", "--json"
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "--channel: 'fax' is not a channel: use sms, email, whatsapp, wechat",
        "--since: 'yesterday' is not an ISO date, date-time or duration like 2h, 3d (meaning that long ago)",
        "--status: 'sent' is not a failure state: use failed, dead or unknown",
    ]
    for args, expected in [
        (["--until", "2026-13-01"], "--until: '2026-13-01' is not an ISO date"),
        (["--since", "0h"], "--since: '0h' is not an ISO date"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], "--until: '2026-01-01' is not after --since '2026-01-02'"),
        (["--since", "1h", "--until", "2h"], "--until: '2h' is not after --since '1h'"),
        (["--limit", "0"], "--limit: 0 is not a positive number of rows"),
    ]:
        result = cli(tmp_path, url, "failures", "list", *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr.startswith(expected), (args, result.stderr)
    for missing in ("999999", "abc"):
        result = cli(tmp_path, url, "failures", "show", missing, "--json")
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.strip() == f"{missing}: no delivery with this id"


def test_show_gives_every_attempt_error_and_provider_id(failed: Pipeline, twilio_server: Any) -> None:
    p = failed
    dead_id = p.row("f5")["id"]
    data = json.loads(run(p, "failures", "show", str(dead_id), "--json").stdout)
    row = data["delivery"]
    assert (row["status"], row["attempts"], row["error_code"], row["address"]) == ("dead", 2, "20500", "+14155550205")
    assert row["body"] == "Eve, your card was renewed." and row["provider"]
    kinds = [e["kind"] for e in data["events"]]
    assert kinds == ["delivery.planned", "delivery.sending", "delivery.retry", "delivery.sending", "delivery.dead"]
    assert [e["data"]["attempt"] for e in data["events"] if e["kind"] == "delivery.sending"] == [1, 2]
    retry, dead = data["events"][2]["data"], data["events"][4]["data"]
    assert (retry["attempt"], retry["error_code"]) == (1, "20500")
    assert "internal server error" in retry["error_message"]
    assert (dead["attempts"], dead["error_code"]) == (2, "20500")
    times = [e["at"] for e in data["events"]]
    assert times == sorted(times)

    text = run(p, "failures", "show", str(dead_id)).stdout
    assert f"delivery {dead_id}" in text and "+14155550205" in text
    assert text.count("error_code=20500") == 2
    assert "attempt=1" in text and "attempt=2" in text

    sent = json.loads(run(p, "failures", "show", str(p.row("f4")["id"]), "--json").stdout)
    [message] = twilio_server.sent_to("+14155550204")
    assert sent["delivery"]["provider_message_id"] == message["sid"]
    assert sent["events"][-1]["kind"] == "delivery.sent"
    assert sent["events"][-1]["data"]["provider_id"] == message["sid"]
    assert message["sid"] in run(p, "failures", "show", str(p.row("f4")["id"])).stdout

    refused = json.loads(run(p, "failures", "show", str(p.row("f3")["id"]), "--json").stdout)
    assert refused["delivery"]["subject"] == "Cat, a new savings product"
    failure = next(e for e in refused["events"] if e["kind"] == "delivery.failed")
    assert failure["data"]["error_code"] == "550" and "No such user" in failure["data"]["error_message"]


def test_report_counts_statuses_and_error_codes_per_step(failed: Pipeline) -> None:
    report = json.loads(run(failed, "report", "promo", "--json").stdout)
    by_step = {(row["step"], row["channel"]): row for row in report["by_step"]}
    sms, email = by_step[("offer", "sms")], by_step[("offer", "email")]
    assert (sms["targeted"], sms["sent"], sms["failed"]) == (4, 1, 3)
    assert sms["errors_by_code"] == {"21211": 2, "21610": 1}
    assert (email["failed"], email["errors_by_code"]) == (1, {"550": 1})
    notice = json.loads(run(failed, "report", "notice", "--json").stdout)
    assert notice["by_step"][0]["dead"] == 1 and notice["by_step"][0]["errors_by_code"] == {"20500": 1}

    text = run(failed, "report", "promo").stdout
    sms_line = next(line for line in text.splitlines() if "│ offer " in line and " sms " in line)
    assert "top errors" in text and "21211 2, 21610 1" in sms_line


def test_replay_of_nothing_says_so(desk: Workdir) -> None:
    desk.write("customers.csv", "id,email\nK001,k001@example.com\n")
    desk.ok("customers", "import", "customers.csv")
    done = desk.ok("failures", "replay", "--campaign", "no-such-campaign")
    assert "nothing to replay: no failed, dead or unknown rows match" in done.stdout
    assert desk.json("failures", "replay", "--campaign", "no-such-campaign")["selected"] == 0
