"""Unsubscribe links over real HTTP: the link in a real marketing email, the confirm page in the customer's
language, RFC 8058 one-click, links that do not disclose the customer id, links of the older format still in
inboxes, and forged tokens."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
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


def legacy_token(key: bytes, customer_id: str, channel: str, purpose: str) -> str:
    """A token as the older code made it (a readable payload and a truncated HMAC), as in links already sent."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = f"{customer_id}|{channel}|{purpose}".encode()
    return f"{b64(payload)}.{b64(hmac.new(key, payload, hashlib.sha256).digest()[:16])}"


def decodings(token: str) -> list[bytes]:
    """Every way someone holding the link might decode it: the token and each of its `.`/`-`/`_` parts, as
    base64url and as standard base64, from each of the four alignments."""
    parts = {token, *re.split(r"[._-]", token), *token.split(".")}
    found = []
    for part in parts:
        for text in (part, part.replace("-", "+").replace("_", "/")):
            for start in range(4):
                chunk = text[start:]
                chunk = chunk[: len(chunk) - len(chunk) % 4]  # whole groups of four: no padding to guess
                for decode in (base64.b64decode, base64.urlsafe_b64decode):
                    with contextlib.suppress(ValueError):
                        found.append(decode(chunk))
    return found


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


def test_a_link_does_not_disclose_the_customer_id(pipeline: Pipeline, web: WebServer, smtp_server: SmtpServer) -> None:
    p = pipeline
    p.import_csv("""
        id,name,email,locale,consent_email
        CN-0042917-B,Li Wei,li.wei@example.cn,zh-CN,yes
    """)
    p.run(p.campaign(NEWSLETTER))
    link = link_in_mail(smtp_server, "li.wei@example.cn")
    token = link.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,80}", token)  # URL-safe as it is, and short
    assert "CN-0042917-B" not in token and "0042917" not in token
    for decoded in decodings(token):
        for word in (b"CN-0042917-B", b"0042917", b"email", b"marketing"):
            assert word not in decoded, (word, decoded)
    # (the same look finds the id in a link of the older format)
    assert any(b"CN-0042917-B" in d for d in decodings(legacy_token(b"k", "CN-0042917-B", "email", "marketing")))
    # the opaque link still works
    assert requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 200
    assert email_consent(p, "CN-0042917-B") == ("revoked", "email:one-click")


def test_links_of_the_older_format_still_unsubscribe(pipeline: Pipeline, web: WebServer) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    assert p.settings.secret_key
    key = p.settings.secret_key.encode()
    # a link from an email sent before tokens were sealed, still in the customer's inbox
    old_link = unsubscribe_url(web.base_url, legacy_token(key, "u2", "email", "marketing"))
    page = requests.get(old_link, timeout=10)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert email_consent(p, "u2")[0] == "granted"
    answer = requests.post(old_link, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert answer.status_code == 200 and "unsubscribed" in answer.text
    assert email_consent(p, "u2") == ("revoked", "email:one-click")
    # and the button of its page
    page_link = unsubscribe_url(web.base_url, legacy_token(key, "u1", "email", "marketing"))
    assert requests.post(page_link, data={"confirm": "yes"}, timeout=10).status_code == 200
    assert email_consent(p, "u1") == ("revoked", "email:unsubscribe-page")


def test_forged_or_altered_tokens_get_404_and_change_nothing(
    pipeline: Pipeline, web: WebServer, smtp_server: SmtpServer
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    p.run(p.campaign(NEWSLETTER))
    link = link_in_mail(smtp_server, "bob@example.com")
    token = link.rsplit("/", 1)[1]
    key = (p.settings.secret_key or "").encode()
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    old = legacy_token(key, "u2", "email", "marketing")
    payload, mac = old.split(".")
    bad_tokens = (
        flipped,  # one character of the sealed token changed
        token[:-1],  # cut short
        token + "A",  # lengthened
        token[:20] + "!" + token[20:],  # a stray character base64 decoding would skip
        token[:-1] + chr(ord(token[-1]) + 1),  # the spare bits of the last character
        make_token(b"not the bank's key", "u1", "email", "marketing"),  # sealed with another key
        # the older format: pointed at another customer, its MAC altered, or signed with another key
        f"{payload[:-2]}xx.{mac}",
        f"{payload}.{mac[:-2]}AA",
        legacy_token(b"not the bank's key", "u1", "email", "marketing"),
        "garbage",
        "",
    )
    for bad in bad_tokens:
        url = unsubscribe_url(web.base_url, bad)
        assert requests.get(url, timeout=10).status_code == 404, bad
        assert requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 404, bad
    # a genuine token of a customer that does not exist, in either format
    for ghost in (make_token(key, "nobody", "email", "marketing"), legacy_token(key, "nobody", "email", "marketing")):
        assert requests.get(unsubscribe_url(web.base_url, ghost), timeout=10).status_code == 404
    # too big a body
    huge = requests.post(link, data={"x": "y" * (p.settings.max_request_bytes + 1)}, timeout=10)
    assert huge.status_code == 413
    assert email_consent(p, "u1")[0] == "granted" and email_consent(p, "u2")[0] == "granted"
    with p.engine.connect() as conn:
        assert [e["kind"] for e in timeline(conn, "u2")].count("consent.revoked") == 0


def test_health(web: WebServer, pipeline: Any) -> None:
    answer = requests.get(web.url("/healthz"), timeout=10)
    assert (answer.status_code, answer.text) == (200, "ok")
