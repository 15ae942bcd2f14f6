"""The unsubscribe page in a real browser (Debian's Chromium): another site cannot frame it to clickjack its
button, and on its own it renders styled under its Content-Security-Policy and unsubscribes with one click."""

from __future__ import annotations

import html
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from outreach.customers.profiles import customer_consents
from outreach.customers.unsubscribe import make_token, unsubscribe_url
from tests.pipeline import Pipeline
from tests.web_server import WebServer

CUSTOMERS = "id,name,email,locale,consent_email\nb1,Ann,ann@example.com,en,yes\n"


@pytest.fixture
def attacker_site() -> Iterator[dict[str, Any]]:
    """Another origin (its own port on loopback) whose page frames whatever `page["target"]` is, invisibly,
    under a "win a prize" button: the classic clickjacking lure."""
    page: dict[str, Any] = {"target": "about:blank"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                "<!doctype html><html><body><button id=lure>Win a prize</button>"
                f'<iframe id=victim src="{html.escape(page["target"])}" width=600 height=300 '
                'style="opacity:0.01;position:absolute;top:0;left:0"></iframe></body></html>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    page["url"] = f"http://127.0.0.1:{server.server_address[1]}/"
    yield page
    server.shutdown()
    server.server_close()


def consent(p: Pipeline) -> str:
    with p.engine.connect() as conn:
        [row] = [c for c in customer_consents(conn, "b1") if c["channel"] == "email"]
    return str(row["status"])


def test_another_site_cannot_frame_the_unsubscribe_button(
    pipeline: Pipeline, web: WebServer, browser: Any, attacker_site: dict[str, Any]
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    link = unsubscribe_url(web.base_url, make_token((p.settings.secret_key or "").encode(), "b1", "email", "marketing"))
    attacker_site["target"] = link
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(attacker_site["url"], wait_until="load")
        [victim] = [f for f in page.frames if f is not page.main_frame]
        # Chromium refuses to render it (frame-ancestors 'none', X-Frame-Options: DENY): an error page instead.
        assert victim.url != link
        assert victim.query_selector("button") is None
        page.click("#lure", force=True)
    finally:
        context.close()
    assert consent(p) == "granted"


def test_the_page_itself_is_styled_under_its_policy_and_its_button_unsubscribes(
    pipeline: Pipeline, web: WebServer, browser: Any
) -> None:
    p = pipeline
    p.import_csv(CUSTOMERS)
    link = unsubscribe_url(web.base_url, make_token((p.settings.secret_key or "").encode(), "b1", "email", "marketing"))
    context = browser.new_context()
    refused: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(link, wait_until="load")
        # The hashed <style> applies (a wrong hash in the policy would leave the browser's defaults).
        assert page.evaluate("getComputedStyle(document.body).maxWidth") == "512px"
        assert consent(p) == "granted"  # opening the page changes nothing
        page.click("button")
        page.wait_for_load_state("load")
        assert "You are unsubscribed" in page.inner_text("body")
    finally:
        context.close()
    assert refused == []
    assert consent(p) == "revoked"
