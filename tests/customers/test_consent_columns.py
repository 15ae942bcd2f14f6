"""Consent per purpose in the customers file: `consent_email` (marketing, as always), and
`consent_email_service` for service messages, which go unless the customer said no."""

from __future__ import annotations

from tests.workdir import Workdir

CUSTOMERS = """
    id,name,email,phone,country,consent_email,consent_email_service,consent_sms_service
    S1,王芳,wang@example.cn,+8613800138001,CN,yes,no,
    S2,李雷,li@example.cn,+8613800138002,CN,no,no,no
    S3,赵敏,zhao@example.cn,+8613800138003,CN,,,
"""

NOTICE = """
    id: statement
    name: Statement ready
    purpose: service
    steps:
      - id: tell
        channel: email
        fallback: sms
        content:
          email: {subject: "{{ name }}, your statement is ready", text: "See it online."}
          sms: "{{ name }}: your statement is ready."
"""


def test_service_consent_columns_are_honoured_by_service_campaigns(desk: Workdir) -> None:
    desk.write("customers.csv", CUSTOMERS)
    desk.ok("customers", "import", "customers.csv")
    shown = desk.json("customers", "show", "S1")
    assert {(c["channel"], c["purpose"], c["status"]) for c in shown["consents"]} == {
        ("email", "marketing", "granted"),
        ("email", "service", "revoked"),
    }
    desk.write("statement.yaml", NOTICE)
    desk.ok("campaigns", "run", "statement.yaml", "--wait")
    # S1 said no to service email: the SMS fallback. S2 said no to both: nothing. S3 said nothing: email.
    assert [str(m["message"]["To"]) for m in desk.outbox("email")] == ["zhao@example.cn"]
    assert [s["customer_id"] for s in desk.outbox("sms")] == ["S1"]
    report = desk.json("report", "statement")
    assert report["suppressed_by_reason"] == {"opted_out": 1}


def test_marketing_column_spelled_out_and_contradictions_refused(desk: Workdir) -> None:
    desk.write("customers.csv", "id,email,consent_email_marketing\nM1,m1@example.com,yes\n")
    desk.ok("customers", "import", "customers.csv")
    consents = desk.json("customers", "show", "M1")["consents"]
    assert [(c["channel"], c["purpose"], c["status"]) for c in consents] == [("email", "marketing", "granted")]
    desk.write("bad.csv", "id,email,consent_email,consent_email_marketing\nM2,m2@example.com,yes,no\n")
    refused = desk.run("customers", "import", "bad.csv")
    assert refused.returncode == 2
    assert "bad.csv:2: consent_email_marketing and consent_email say different things" in refused.stderr
    assert desk.run("customers", "show", "M2").returncode == 2  # nothing was imported


def test_an_import_does_not_regrant_a_service_consent_the_customer_withdrew(desk: Workdir) -> None:
    desk.write("customers.csv", "id,email,consent_email_service\nW1,w1@example.com,yes\n")
    desk.ok("customers", "import", "customers.csv")
    desk.ok("customers", "consent", "W1", "email", "service", "revoked", "--reason", "asked by phone")
    summary = desk.json("customers", "import", "customers.csv")
    assert summary["consents_changed"] == 0
    consents = desk.json("customers", "show", "W1")["consents"]
    assert [(c["purpose"], c["status"]) for c in consents] == [("service", "revoked")]
