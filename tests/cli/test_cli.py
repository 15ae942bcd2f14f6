"""The `outreach` command as users script it: exit statuses, PATH:LINE:COL errors, --json on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OUTREACH = str(Path(sys.executable).with_name("outreach"))

CUSTOMERS = """\
id,name,phone,country,email,locale,consent_sms,consent_email,status
u1,王芳,13800138001,CN,wang@example.cn,zh-CN,yes,yes,active
u2,Bob,+14155550100,US,bob@example.com,en,,yes,active
u3,Amy,+14155550101,US,,en,,,active
"""

CAMPAIGN = """\
id: hello
name: Hello
purpose: marketing
segment: "status == 'active'"
steps:
  - id: greet
    channel: sms
    fallback: email
    content:
      sms: "{{ name }}您好"
      email:
        subject: "Hello {{ name }}"
        text: "Hello {{ name }}"
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "hello.yaml").write_text(CAMPAIGN, encoding="utf-8")
    return tmp_path


def outreach(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(OUTREACH_CONFIG=str(workdir / "none.toml"), OUTREACH_SECRET_KEY="cli-test-key", OUTREACH_QUIET_HOURS="")
    return subprocess.run([OUTREACH, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def test_import_run_show_report(workdir: Path) -> None:
    imported = outreach(workdir, "customers", "import", "customers.csv")
    assert imported.returncode == 0, imported.stderr
    assert "3 rows: 3 created" in imported.stdout

    plan = outreach(workdir, "campaigns", "plan", "hello.yaml", "--json")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    step = data["steps"][0]
    assert (step["audience"], step["by_channel"], step["suppressed"]) == (3, {"sms": 1, "email": 1}, {"no_consent": 1})
    assert step["samples"][0]["body"] == "王芳您好 回复R拒收"

    for _ in range(2):
        run = outreach(workdir, "campaigns", "run", "hello.yaml")
        assert run.returncode == 0, run.stderr
    outbox = sorted(p.relative_to(workdir / "outbox").as_posix() for p in (workdir / "outbox").rglob("*.*"))
    assert outbox == ["email/2.eml", "sms/1.json"]

    report = json.loads(outreach(workdir, "report", "hello", "--json").stdout)
    assert report["funnel"]["targeted"] == 3 and report["funnel"]["sent"] == 2
    assert report["suppressed_by_reason"] == {"no_consent": 1}

    shown = json.loads(outreach(workdir, "customers", "show", "u1", "--json").stdout)
    assert shown["customer"]["phone"] == "+8613800138001"
    assert [e["kind"] for e in shown["timeline"]][-3:] == ["delivery.planned", "delivery.sending", "delivery.sent"]


def test_bad_input_exits_2_with_locations_and_writes_nothing(workdir: Path) -> None:
    (workdir / "bad.csv").write_text("id,phone\nb1,12345\nb2,+8613800138001\n,x\n", encoding="utf-8")
    result = outreach(workdir, "customers", "import", "bad.csv")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "bad.csv:2: phone '12345' has no country code: write it as +CC... or give a country",
        "bad.csv:4: missing id",
        "bad.csv:4: phone 'x' is not a phone number",
    ]
    assert result.stdout == ""

    broken = textwrap.dedent(
        """\
        id: Bad_Id
        name: Broken
        purpose: marketing
        colour: blue
        steps:
          - id: s
            channel: sms
            content:
              sms: "{{ name.__class__ }}"
        """
    )
    (workdir / "broken.yaml").write_text(broken, encoding="utf-8")
    validate = outreach(workdir, "campaigns", "validate", "broken.yaml")
    assert validate.returncode == 2
    lines = validate.stderr.splitlines()
    assert any(line.startswith("broken.yaml:1:5: ") for line in lines), lines
    assert any(line.startswith("broken.yaml:4:1: unknown key 'colour'") for line in lines), lines
    run = outreach(workdir, "campaigns", "run", "broken.yaml")
    assert run.returncode == 2
    assert not (workdir / "outreach.db").exists() or "deliveries" not in outreach(workdir, "report", "x").stdout


def test_show_unknown_customer_is_bad_input(workdir: Path) -> None:
    result = outreach(workdir, "customers", "show", "nobody")
    assert result.returncode == 2
    assert result.stderr.strip() == "nobody: no customer with this id"


def test_a_trigger_campaign_is_not_run_by_hand(workdir: Path) -> None:
    assert outreach(workdir, "customers", "import", "customers.csv").returncode == 0
    shipped = Path(__file__).resolve().parents[2] / "campaigns" / "complaint-ack.yaml"
    for command in ("run", "plan"):
        refused = outreach(workdir, "campaigns", command, str(shipped))
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"{shipped}: campaign complaint-ack answers customers' messages")
        assert "planning" not in refused.stdout
    assert not (workdir / "outbox").exists()
