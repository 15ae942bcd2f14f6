"""`outreach reply`: an operator's message to one customer, through the ledger and workers, only inside the
social channels' windows."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from outreach.inbound.responses import InboundMessage, file_inbound
from outreach.store.database import utcnow
from outreach.store.ledger import Status
from tests.commands import OUTREACH, environment, twilio_environment
from tests.pipeline import Pipeline


def reply(p: Pipeline, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    extra = {**twilio_environment(p.settings), "OUTREACH_WHATSAPP_FROM": "+15005550007", **extra_env}
    env = environment(p.settings, **extra)
    return subprocess.run([OUTREACH, "reply", *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_operator_replies_go_through_the_ledger_inside_the_window(pipeline: Pipeline, twilio_server: Any) -> None:
    p = pipeline
    p.import_csv("id,name,phone,whatsapp,country\no1,Ann,+14155550801,+14155550801,US\no2,Ben,+14155550802,,US\n")
    file_inbound(
        p.engine,
        InboundMessage(
            "whatsapp", "SMo1", "+14155550801", "my card is blocked", received_at=utcnow() - timedelta(hours=2)
        ),
        p.settings,
    )
    done = reply(p, "o1", "--channel", "whatsapp", "--by", "agent-7", "We have unblocked your card.")
    assert done.returncode == 0, done.stderr
    [sent] = twilio_server.sent_to("whatsapp:+14155550801")
    assert sent["body"] == "We have unblocked your card."
    row = p.row("o1")
    assert (row["campaign_id"], row["status"], row["channel"]) == ("operator", Status.SENT, "whatsapp")

    closed = reply(p, "o2", "--channel", "whatsapp", "Hello")  # no WhatsApp number, and never wrote
    assert closed.returncode == 1 and "no whatsapp" in closed.stderr
    sms = reply(p, "o2", "--channel", "sms", "Your card is ready.")
    assert sms.returncode == 0 and len(twilio_server.sent_to("+14155550802")) == 1
    p.import_csv("id,whatsapp\no2,+14155550802\n")
    outside = reply(p, "o2", "--channel", "whatsapp", "Hello")
    assert outside.returncode == 1 and "window_closed" in outside.stderr
    assert len(p.rows(customer_id="o2")) == 1
    unknown = reply(p, "nobody", "Hi")
    assert unknown.returncode == 2 and unknown.stderr.startswith("nobody: no customer")


def test_a_reply_from_a_template_is_rendered_for_the_customer(
    pipeline: Pipeline, twilio_server: Any, smtp_server: Any
) -> None:
    p = pipeline
    p.import_csv(
        "id,name,phone,email,country,card_last4\no1,Ann,+14155550801,ann@example.com,US,4242\no2,Ben,+14155550802,,US,\n"
    )
    templates = p.settings.templates_dir
    (templates / "desk").mkdir(parents=True)
    (templates / "desk/card-ready.sms.j2").write_text("{{ name }}, your card ending {{ card_last4 }} is ready.\n")
    (templates / "desk/card-ready.subject.j2").write_text("Your card is ready, {{ name }}\n")
    (templates / "desk/card-ready.txt.j2").write_text("Dear {{ name }},\nyour card ending {{ card_last4 }} is ready.\n")
    env = ["--template", "desk/card-ready"]
    done = reply_in(p, templates, "o1", "--channel", "sms", *env)
    assert done.returncode == 0, done.stderr
    assert [m["body"] for m in twilio_server.sent_to("+14155550801")] == ["Ann, your card ending 4242 is ready."]
    mailed = reply_in(p, templates, "o1", "--channel", "email", *env)
    assert mailed.returncode == 0, mailed.stderr
    [mail] = smtp_server.handler.to("ann@example.com")
    assert mail.message["Subject"] == "Your card is ready, Ann"
    assert "your card ending 4242 is ready." in mail.message.get_body(("plain",)).get_content()

    lacking = reply_in(p, templates, "o2", "--channel", "sms", *env)  # Ben has no card_last4: nothing is sent
    assert lacking.returncode == 1 and "card_last4" in lacking.stderr
    assert reply_in(p, templates, "o1", "--template", "desk/none").returncode == 2
    both = reply_in(p, templates, "o1", "text", *env)
    assert both.returncode == 2 and "not both" in both.stderr
    assert len(p.rows(customer_id="o2")) == 0 and len(p.rows(customer_id="o1")) == 2


def reply_in(p: Pipeline, templates: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return reply(p, *args, OUTREACH_TEMPLATES_DIR=str(templates), OUTREACH_SMTP_URL=p.settings.smtp_url or "")


def test_a_template_name_cannot_read_a_file_outside_the_templates_folder(
    pipeline: Pipeline, twilio_server: Any, tmp_path: Path
) -> None:
    p = pipeline
    p.import_csv("id,name,phone,country\no1,Ann,+14155550801,US\n")
    templates = p.settings.templates_dir
    (templates / "desk").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.sms.j2").write_text("the vault code is 1234\n")
    (templates / "desk/leak.sms.j2").symlink_to(outside / "secret.sms.j2")
    (templates / "shared").symlink_to(outside, target_is_directory=True)
    rule = "template names are folders and names of letters, digits, _ and -, like nps/reminder"
    link = f"leads out of the templates folder {templates} by a symbolic link: not read"

    for name, refusal in [
        ("../outside/secret", f"--template: '../outside/secret' is not valid: {rule}"),
        (str(outside / "secret"), f"--template: '{outside / 'secret'}' is not valid: {rule}"),
        ("desk/leak", f"--template: {templates / 'desk/leak.sms.j2'} {link}"),
        ("shared/secret", f"--template: {templates / 'shared/secret.sms.j2'} {link}"),
    ]:
        refused = reply_in(p, templates, "o1", "--template", name)
        assert (refused.returncode, refused.stderr.strip()) == (2, refusal), name
        assert "1234" not in refused.stdout + refused.stderr
    assert twilio_server.sent_to("+14155550801") == [] and p.rows(customer_id="o1") == []

    (templates / "nps").mkdir()
    (templates / "nps/reminder.sms.j2").write_text("{{ name }}, one question for you.\n")
    done = reply_in(p, templates, "o1", "--template", "nps/reminder")
    assert done.returncode == 0, done.stderr
    assert [m["body"] for m in twilio_server.sent_to("+14155550801")] == ["Ann, one question for you."]
