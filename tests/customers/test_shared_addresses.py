"""Two customers with one address: the import says so, and a service message with one customer's details is
not sent to an address the other customer also has (it falls back, or is suppressed `shared_address`)."""

from __future__ import annotations

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,email,phone,country,card_last4,consent_email,consent_sms
    K001,王芳,wang@example.cn,+8613800138001,CN,1234,yes,yes
    K002,李雷,li@example.cn,+8613800138002,CN,5678,yes,yes
    K009,王小明,Wang@Example.cn,,CN,9012,yes,yes
    K010,赵敏,zhao@example.cn,+8613800138002,CN,3456,yes,yes
"""

REMINDER = """
    id: card-reminder
    name: Card payment reminder
    purpose: service
    steps:
      - id: remind
        channel: email
        fallback: sms
        content:
          email:
            subject: "{{ name }}, your card ending {{ card_last4 }} is due"
            text: "Card ending {{ card_last4 }}: please pay by the due date."
          sms: "{{ name }}: card ending {{ card_last4 }} is due."
"""


def test_import_reports_shared_addresses_with_their_lines_and_counts(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    imported = desk.ok("customers", "import", "customers.csv")
    out = " ".join(imported.stdout.split())  # rich wraps long lines
    assert "warning: customers.csv:2: email wang@example.cn is shared by K001, K009 (lines 2, 4)" in out
    assert "warning: customers.csv:3: phone +8613800138002 is shared by K002, K010 (lines 3, 5)" in out
    assert "shared addresses: 1 email, 1 phone" in out
    # A later file sharing with a customer already in the store is reported too.
    desk.write("more.csv", "id,name,email\nK020,钱多,li@example.cn\n")
    again = desk.json("customers", "import", "more.csv")
    assert again["shared_addresses"] == {"email": 1}
    assert again["shared"] == [{"column": "email", "address": "li@example.cn", "customers": ["K002", "K020"]}]


def test_a_service_message_is_not_sent_to_an_address_another_customer_has(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("reminder.yaml", REMINDER)
    [step] = desk.json("campaigns", "plan", "reminder.yaml")["steps"]
    # K001's email is shared: their phone is not, so the SMS fallback takes it. K009 has only the shared
    # email. K002's email is fine. K010's email is fine (the phone they share is not needed).
    assert step["by_channel"] == {"email": 2, "sms": 1}
    assert step["suppressed"] == {"shared_address": 1}
    desk.ok("campaigns", "run", "reminder.yaml", "--wait")
    emails = {str(m["message"]["To"]): str(m["message"]["Subject"]) for m in desk.outbox("email")}
    assert emails == {
        "li@example.cn": "李雷, your card ending 5678 is due",
        "zhao@example.cn": "赵敏, your card ending 3456 is due",
    }
    assert [(s["customer_id"], s["to"]) for s in desk.outbox("sms")] == [("K001", "+8613800138001")]
    failures = desk.json("report", "card-reminder")
    assert failures["suppressed_by_reason"] == {"shared_address": 1}
    shown = desk.json("customers", "show", "K009")
    [suppressed] = [e for e in shown["timeline"] if e["kind"] == "delivery.suppressed"]
    assert suppressed["data"]["reason"] == "shared_address"
    assert "shared with K001" in suppressed["data"]["detail"]


def test_marketing_sends_to_shared_addresses_unless_told_not_to(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    offer = """
        id: offer
        name: Card offer
        purpose: marketing
        steps:
          - id: send
            channel: email
            content:
              email: {subject: "An offer for {{ name }}", text: "Hello {{ name }}"}
    """
    desk.write("offer.yaml", offer)
    assert desk.json("campaigns", "plan", "offer.yaml")["steps"][0]["by_channel"] == {"email": 4}
    desk.write(
        "strict.yaml", offer.replace("purpose: marketing", "purpose: marketing\n        shared_address: suppress")
    )
    [step] = desk.json("campaigns", "plan", "strict.yaml")["steps"]
    assert (step["by_channel"], step["suppressed"]) == ({"email": 2}, {"shared_address": 2})
    # and a service campaign can choose to send anyway
    desk.write("lenient.yaml", REMINDER.replace("purpose: service", "purpose: service\n    shared_address: send"))
    [step] = desk.json("campaigns", "plan", "lenient.yaml")["steps"]
    assert (step["by_channel"], step["suppressed"]) == ({"email": 4}, {})
    # the default per purpose is a setting
    desk.write("reminder.yaml", REMINDER)
    [step] = desk.json("campaigns", "plan", "reminder.yaml", OUTREACH_SHARED_ADDRESS_SERVICE="send")["steps"]
    assert step["by_channel"] == {"email": 4}


def test_an_invalid_phone_is_invalid_address_and_shares_nothing(desk: Workdir) -> None:
    desk.write(
        "customers.csv",
        """
        id,name,phone,country
        B1,One,12345,CN
        B2,Two,12345,CN
        B3,Three,,CN
        B4,Four,+8613800138009,CN
        """,
    )
    done = desk.ok("customers", "import", "--allow-invalid-contacts", "customers.csv")
    assert "shared" not in done.stdout + done.stderr
    desk.write(
        "tell.yaml",
        """
        id: tell
        name: Tell
        purpose: service
        steps:
          - id: tell
            channel: sms
            content: {sms: "Hi {{ name }}"}
        """,
    )
    plan = desk.json("campaigns", "plan", "tell.yaml")["steps"][0]
    assert plan["suppressed"] == {"invalid_address": 2, "no_address": 1}
    assert plan["by_channel"] == {"sms": 1}
