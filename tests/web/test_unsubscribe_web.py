"""Unsubscribe links over real HTTP: the link in a real marketing email, the confirm page in the customer's
language, RFC 8058 one-click, and forged tokens."""

from __future__ import annotations

import re
from typing import Any

import requests

from outreach.customers.profiles import customer_consents, timeline
from outreach.customers.unsubscribe import make_token, unsubscribe_url
from outreach.store.ledger import Status
from tests.pipeline import Pipeline
from tests.smtp_server import SmtpServer
from tests.web_server import WebServer

CUSTOMERS = """
    id,name,email,locale,consent_email
    u1,王芳,wang@example.cn,zh-CN,yes
    u2,Bob,bob@example.com,en,yes
"""

NEWSLETTER = """
    id: letter
    name: Monthly letter
    purpose: marketing
    steps:
      - id: send
        channel: email
        content:
          email:
            subject: "News for {{ name }}"
            text: "Dear {{ name }}, here is our news."
            html: "<p>Dear {{ name }}, here is our news.</p>"
"""


def link_in_mail(smtp: SmtpServer, address: str) -> str:
    [mail] = smtp.handler.to(address)
    message = mail.message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(r"<(.+)>", str(message["List-Unsubscribe"]))
    assert match
    return match.group(1)


def email_consent(p: Pipeline, customer_id: str) -> tuple[str, str]:
    with p.engine.connect() as conn:
        [row] = [c for c in customer_consents(conn, customer_id) if c["channel"] == "email"]
    return row["status"], row["source"]


def test_one_click_unsubscribes_without_redirect_or_cookies(
    pipeline: Pipeline, web: WebServer, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NEWSLETTER), "may")
    link = link_in_mail(smtp_server, "bob@example.com")
    assert link.startswith(web.base_url + "/u/")

    # What a mail provider does (RFC 8058): POST the one-click body, no cookies, follow nothing.
    answer = requests.post(link, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers and "location" not in answer.headers
    assert "unsubscribed" in answer.text
    assert email_consent(p, "u2") == ("revoked", "email:one-click")
    assert p.row("u2")["opted_out_at"] is not None
    # a second click changes nothing more
    assert requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 200
    with p.engine.connect() as conn:
        assert [e["kind"] for e in timeline(conn, "u2")].count("consent.revoked") == 1

    p.run(p.campaign(NEWSLETTER), "june")
    june = p.row("u2", occurrence="june")
    assert (june["status"], june["reason"]) == (Status.SUPPRESSED, "opted_out")
    assert len(smtp_server.handler.to("bob@example.com")) == 1
    assert len(smtp_server.handler.to("wang@example.cn")) == 2


def test_the_page_asks_first_in_the_customers_language(
    pipeline: Pipeline, web: WebServer, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NEWSLETTER))
    link = link_in_mail(smtp_server, "wang@example.cn")

    page = requests.get(link, timeout=10)  # a link scanner or the customer opening it: nothing changes yet
    assert page.status_code == 200
    assert 'lang="zh-CN"' in page.text and "确认退订" in page.text and 'method="post"' in page.text
    assert email_consent(p, "u1")[0] == "granted"

    confirmed = requests.post(link, data={"confirm": "yes"}, timeout=10)  # the page's button
    assert confirmed.status_code == 200 and "您已退订" in confirmed.text
    assert email_consent(p, "u1") == ("revoked", "email:unsubscribe-page")
    again = requests.get(link, timeout=10)
    assert "无需再次操作" in again.text


def test_forged_or_altered_tokens_get_404_and_change_nothing(
    pipeline: Pipeline, web: WebServer, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NEWSLETTER))
    link = link_in_mail(smtp_server, "bob@example.com")
    token = link.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    # the same token pointed at another customer, or with its MAC altered, or signed with another key
    other = make_token(b"not the bank's key", "u1", "email", "marketing")
    for bad in (f"{payload[:-2]}xx.{mac}", f"{payload}.{mac[:-2]}AA", other, "garbage", ""):
        url = unsubscribe_url(web.base_url, bad)
        assert requests.get(url, timeout=10).status_code == 404, bad
        assert requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 404, bad
    # a genuine token of a customer that does not exist
    ghost = make_token(p.settings.secret_key.encode() if p.settings.secret_key else b"", "nobody", "email", "marketing")
    assert requests.get(unsubscribe_url(web.base_url, ghost), timeout=10).status_code == 404
    # too big a body
    huge = requests.post(link, data={"x": "y" * (p.settings.max_request_bytes + 1)}, timeout=10)
    assert huge.status_code == 413
    assert email_consent(p, "u1")[0] == "granted" and email_consent(p, "u2")[0] == "granted"


def test_health(web: WebServer, pipeline: Any) -> None:
    answer = requests.get(web.url("/healthz"), timeout=10)
    assert (answer.status_code, answer.text) == (200, "ok")
