"""A frequency cap on a service campaign counts that campaign's own messages (a reminder does not nag), and
never holds back another service message."""

from __future__ import annotations

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,phone,country
    R1,王芳,+8613800138001,CN
    R2,李雷,+8613800138002,CN
"""

REMINDER = """
    id: due-reminder
    name: Payment due
    purpose: service
    frequency_cap: {max: 1, per: 3d}
    steps:
      - id: remind
        channel: sms
        content:
          sms: "{{ name }}: your card payment is due soon."
"""

ALERT = """
    id: fraud-alert
    name: Fraud alert
    purpose: service
    quiet_hours: "off"
    steps:
      - id: alert
        channel: sms
        content:
          sms: "{{ name }}: a card payment needs your confirmation."
"""


def test_a_service_cap_holds_its_own_second_message_and_nothing_else(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    desk.write("reminder.yaml", REMINDER)
    desk.write("alert.yaml", ALERT)
    desk.ok("campaigns", "validate", "reminder.yaml", "alert.yaml")
    desk.ok("campaigns", "run", "reminder.yaml", "--occurrence", "monday", "--wait")
    [step] = desk.json("campaigns", "plan", "reminder.yaml", "--occurrence", "tuesday")["steps"]
    assert step["suppressed"] == {"frequency_cap": 2}
    desk.ok("campaigns", "run", "reminder.yaml", "--occurrence", "tuesday", "--wait")
    desk.ok("campaigns", "run", "alert.yaml", "--wait")
    sent = [(s["customer_id"], s["body"].split(": ")[1]) for s in desk.outbox("sms")]
    assert sorted(sent) == [
        ("R1", "a card payment needs your confirmation."),
        ("R1", "your card payment is due soon."),
        ("R2", "a card payment needs your confirmation."),
        ("R2", "your card payment is due soon."),
    ]
    shown = desk.json("customers", "show", "R1")
    [capped] = [e for e in shown["timeline"] if e["kind"] == "delivery.suppressed"]
    assert capped["data"]["reason"] == "frequency_cap"
    assert capped["data"]["detail"] == "1 of this campaign's messages within 3d (the cap is 1)"
