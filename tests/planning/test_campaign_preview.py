"""Seeing the audience and a message before sending, as a marketer does it on the embedded default: one
customer's preview of every step, samples of each channel and variant, the full recipient list, and a test
send to one's own address that the campaign's reports never count."""

from __future__ import annotations

import csv
import json

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,email,phone,country,locale,consent_email,consent_sms,card_last4
    K001,王芳,wang@example.cn,13800138001,CN,zh-CN,yes,yes,4821
    K002,Bob,bob@example.com,+8613800138002,CN,en,no,yes,1177
    K003,Li,li@example.cn,13800138003,CN,zh-CN,no,no,9090
    K004,Amy,amy@example.com,,CN,en,yes,no,5555
"""

OFFER = """
    id: card-offer
    name: Card offer
    purpose: marketing
    steps:
      - id: offer
        channel: email
        fallback: sms
        variants:
          - id: plain
            weight: 50
            content:
              email: {subject: "Offer for {{ name }}", text: "Hello {{ name }}, card {{ card_last4 }}."}
              sms: "Hello {{ name }}, card {{ card_last4 }}."
          - id: bold
            weight: 50
            content:
              email: {subject: "BIG offer for {{ name }}", text: "Hi {{ name }}!"}
              sms: "Hi {{ name }}!"
      - id: nudge
        channel: email
        after: 3d
        unless: replied
        content:
          email: {subject: "Still thinking, {{ name }}?", text: "Card {{ card_last4 }} is waiting."}
"""


def _desk(desk: Workdir) -> Workdir:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("offer.yaml", OFFER)
    return desk


def test_preview_of_one_customer_shows_every_step_its_channel_and_why(desk: Workdir) -> None:
    _desk(desk)
    bob = desk.json("campaigns", "plan", "offer.yaml", "--customer", "K002")
    assert bob["in_segment"] is True
    first, nudge = bob["steps"]
    # Bob said no to marketing email: the step falls back to SMS, and the follow-up is suppressed
    assert (first["channel"], first["status"], first["to"]) == ("sms", "queued", "+8613800138002")
    assert first["variant"] in ("plain", "bold")
    assert "Bob" in first["body"] and first["subject"] is None
    assert (nudge["channel"], nudge["status"], nudge["reason"]) == ("email", "suppressed", "opted_out")
    assert nudge["when"] == "3d after the previous step, unless the customer replied"

    shown = desk.ok("campaigns", "plan", "offer.yaml", "--customer", "K001").stdout
    assert "step offer (when the campaign runs)" in shown
    assert "by email to wang@example.cn" in shown
    assert "Subject: Still thinking, 王芳?" in shown
    assert "| Card 4821 is waiting." in shown

    li = desk.ok("campaigns", "plan", "offer.yaml", "--customer", "K003").stdout
    assert "nothing sent by email: opted_out (sms fallback: opted_out)" in li

    missing = desk.run("campaigns", "plan", "offer.yaml", "--customer", "K999")
    assert missing.returncode == 2 and "--customer: no customer 'K999'" in missing.stderr
    # a preview writes nothing
    assert "this campaign has not run (no ledger rows)" in desk.run("report", "card-offer").stderr


def test_samples_cover_each_channel_and_variant(desk: Workdir) -> None:
    _desk(desk)
    plan = desk.json("campaigns", "plan", "offer.yaml")
    samples = plan["steps"][0]["samples"]
    kinds = {(s["channel"], s["variant"]) for s in samples}
    planned = desk.run("campaigns", "plan", "offer.yaml", "--recipients", "-").stdout
    sent = [r for r in csv.DictReader(planned.splitlines()) if r["status"] == "would send"]
    assert kinds == {(r["channel"], r["variant"]) for r in sent}
    assert len(samples) >= min(3, len(sent))


def test_recipient_list_has_one_line_per_customer_with_the_reason(desk: Workdir) -> None:
    _desk(desk)
    done = desk.ok("campaigns", "plan", "offer.yaml", "--recipients", "who.csv")
    assert "recipients: 4 lines written to who.csv" in done.stdout
    rows = {r["customer"]: r for r in csv.DictReader((desk.path / "who.csv").open(encoding="utf-8"))}
    assert set(rows) == {"K001", "K002", "K003", "K004"}
    assert (rows["K001"]["channel"], rows["K001"]["status"], rows["K001"]["to"]) == (
        "email",
        "would send",
        "wang@example.cn",
    )
    assert (rows["K002"]["channel"], rows["K002"]["status"]) == ("sms", "would send")
    assert (rows["K003"]["status"], rows["K003"]["reason"]) == ("suppressed", "opted_out")

    desk.ok("campaigns", "plan", "offer.yaml", "--recipients", "who.jsonl")
    lines = [json.loads(line) for line in (desk.path / "who.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["customer"] for line in lines] == ["K001", "K002", "K003", "K004"]
    assert lines[2]["reason"] == "opted_out" and lines[0]["variant"] in ("plain", "bold")

    both = desk.run("campaigns", "plan", "offer.yaml", "--recipients", "-", "--json")
    assert both.returncode == 2 and "--recipients" in both.stderr


def test_test_send_goes_for_real_marked_as_a_test_and_never_counted(desk: Workdir) -> None:
    _desk(desk)
    done = desk.ok("campaigns", "test-send", "offer.yaml", "--to", "marketer@bank.example", "--as", "K001")
    assert "sent: step offer by email to marketer@bank.example, rendered for K001" in done.stdout
    [mail] = desk.outbox("email")
    message = mail["message"]
    assert message["To"] == "marketer@bank.example"
    assert message["Subject"].startswith("[TEST] ") and "王芳" in message["Subject"]
    # its unsubscribe link opts nobody out
    assert message["List-Unsubscribe"].endswith("/u/test-send>")
    text = message.get_body(("plain",)).get_content()
    assert "/u/test-send" in text

    # an SMS test of a chosen variant, to an international number
    desk.ok("campaigns", "test-send", "offer.yaml", "--to", "+8613900000000", "--channel", "sms", "--variant", "bold")
    [sms] = desk.outbox("sms")
    assert sms["to"] == "+8613900000000" and sms["body"].startswith("Hi 王芳!")

    # the campaign's report counts neither; the customer's timeline and the audit log show the test
    assert "this campaign has not run (no ledger rows)" in desk.run("report", "card-offer").stderr
    assert desk.json("report", "test:card-offer")["funnel"]["sent"] == 2
    timeline = desk.ok("customers", "show", "K001", "--json").stdout
    assert "delivery.test" in timeline
    audit = desk.json("audit", "list")
    assert [e["action"] for e in audit][:2] == ["test-send", "test-send"]

    # a real run afterwards still plans everyone (the test took nobody's place)
    run = desk.json("campaigns", "plan", "offer.yaml")
    assert run["steps"][0]["to_send"] == 3

    bad = desk.run("campaigns", "test-send", "offer.yaml", "--to", "not-an-address")
    assert bad.returncode == 2 and "--to" in bad.stderr
    national = desk.run("campaigns", "test-send", "offer.yaml", "--to", "13900000000", "--channel", "sms")
    assert national.returncode == 2 and "+CC" in national.stderr
    assert len(desk.outbox("email")) == 1 and len(desk.outbox("sms")) == 1


def test_plan_warns_when_links_would_point_at_this_machine(desk: Workdir) -> None:
    _desk(desk)
    warned = desk.ok("campaigns", "plan", "offer.yaml")
    assert "warning: campaign card-offer's messages carry unsubscribe links to http://127.0.0.1:8000" in warned.stderr
    assert "OUTREACH_PUBLIC_URL" in warned.stderr
    public = desk.ok("campaigns", "plan", "offer.yaml", OUTREACH_PUBLIC_URL="https://outreach.bank.example")
    assert "unsubscribe links" not in public.stderr
    # a service message without links needs no public address
    desk.write(
        "notice.yaml",
        """
        id: notice
        name: Notice
        purpose: service
        steps:
          - id: tell
            channel: email
            content:
              email: {subject: "Card {{ card_last4 }}", text: "Your statement is ready."}
        """,
    )
    assert "warning" not in desk.ok("campaigns", "plan", "notice.yaml").stderr


def test_samples_cover_each_language_of_a_mixed_audience(desk: Workdir) -> None:
    rows = "".join(f"L00{i},王{i},+861380013800{i},CN,zh-CN,yes\n" for i in range(1, 5))
    desk.write(
        "customers.csv", "id,name,phone,country,locale,consent_sms\n" + rows + "L009,Amy,+14155550109,US,en,yes\n"
    )
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "hello.yaml",
        """
        id: hello
        name: Hello
        purpose: service
        steps:
          - id: hi
            channel: sms
            content:
              sms: {zh: "{{ name }}您好", en: "Hello {{ name }}"}
        """,
    )
    samples = desk.json("campaigns", "plan", "hello.yaml")["steps"][0]["samples"]
    assert {s["locale"] for s in samples} == {"zh-CN", "en"}
    assert "Hello Amy" in [s["body"] for s in samples]
    shown = desk.ok("campaigns", "plan", "hello.yaml").stdout
    assert "sample to L009 by sms (+14155550109), en" in shown


def test_plan_says_a_service_sms_goes_to_those_who_said_no_to_marketing(desk: Workdir) -> None:
    desk.write(
        "customers.csv",
        "id,name,phone,country,consent_sms,consent_sms_service\n"
        "N1,Ann,+14155550111,US,yes,\nN2,Ben,+14155550112,US,no,\nN3,Cao,+14155550113,US,,no\n",
    )
    desk.ok("customers", "import", "customers.csv")
    desk.write(
        "notice.yaml",
        """
        id: card-notice
        name: Card notice
        purpose: service
        steps:
          - id: tell
            channel: sms
            content: {sms: "{{ name }}, your new card is on its way."}
        """,
    )
    step = desk.json("campaigns", "plan", "notice.yaml")["steps"][0]
    assert (step["by_channel"], step["suppressed"]) == ({"sms": 2}, {"opted_out": 1})
    assert step["marketing_declined"] == {"sms": 1}  # Ben: consent_sms=no is about marketing
    shown = desk.ok("campaigns", "plan", "notice.yaml", COLUMNS="200").stdout
    assert "of which said no to marketing sms (consent_sms=no): a service message still goes;" in shown
    ben = desk.ok("campaigns", "plan", "notice.yaml", "--customer", "N2", COLUMNS="200").stdout
    assert "by sms to +14155550112" in ben
    assert "note: N2 said no to marketing sms (consent_sms=no), which does not stop a service message" in ben
    cao = desk.ok("campaigns", "plan", "notice.yaml", "--customer", "N3").stdout
    assert "nothing sent by sms: opted_out" in cao
