"""Every response of `outreach serve` carries the headers that stop framing, sniffing and foreign content,
checked over real HTTP on every route the app has (a route added later is checked without a new test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from outreach.customers.unsubscribe import make_token, unsubscribe_url
from outreach.web.app import create_app
from outreach.web.security_headers import SecurityHeaders
from tests.pipeline import Pipeline
from tests.web_server import WebServer

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CSP_DIRECTIVES = {"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"}


def assert_protected(answer: requests.Response) -> None:
    for name, value in EXPECTED.items():
        assert answer.headers.get(name) == value, (answer.request.method, answer.url, name)
    directives = {d.strip() for d in answer.headers["content-security-policy"].split(";")}
    assert directives >= CSP_DIRECTIVES, directives
    [style] = [d for d in directives if d.startswith("style-src ")]
    assert "'unsafe-inline'" not in style and "'sha256-" in style


def test_every_route_and_error_of_the_server_sends_the_headers(pipeline: Pipeline, web: WebServer) -> None:
    p = pipeline
    p.import_csv("id,name,email,consent_email\nh1,Ann,ann@example.com,yes\n")
    key = (p.settings.secret_key or "").encode()
    token = make_token(key, "h1", "email", "marketing")
    routes = create_app(p.settings).app.routes  # the Starlette app inside the headers middleware
    html_pages = 0
    for route in routes:
        path = route.path.replace("{token}", token)
        for method in sorted(route.methods - {"HEAD"}):
            answer = requests.request(method, web.url(path), timeout=10)
            assert_protected(answer)
            html_pages += answer.headers.get("content-type", "").startswith("text/html")
    assert html_pages >= 2  # the unsubscribe page's question and its answer
    for method, url in [
        ("GET", web.url("/no/such/page")),
        ("GET", unsubscribe_url(web.base_url, "forged.token")),
        ("POST", web.url("/webhooks/twilio/status")),
        ("DELETE", web.url("/healthz")),
    ]:
        answer = requests.request(method, url, timeout=10)
        assert answer.status_code >= 400
        assert_protected(answer)


def test_unsubscribe_pages_are_html_with_the_headers_and_no_inline_style_attribute(
    pipeline: Pipeline, web: WebServer
) -> None:
    p = pipeline
    p.import_csv("id,name,email,consent_email\nh2,Bo,bo@example.com,yes\n")
    link = unsubscribe_url(web.base_url, make_token((p.settings.secret_key or "").encode(), "h2", "email", "marketing"))
    for answer in (requests.get(link, timeout=10), requests.post(link, data={"confirm": "yes"}, timeout=10)):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert_protected(answer)
        assert "style=" not in answer.text and "<script" not in answer.text


def test_a_crash_inside_the_app_still_answers_with_the_headers() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = SecurityHeaders(Starlette(routes=[Route("/boom", boom)]))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "path": "/boom",
        "raw_path": b"/boom", "query_string": b"", "headers": [], "scheme": "http", "server": ("t", 80),
    }  # fmt: skip
    with pytest.raises(RuntimeError):
        asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert start["status"] == 500
    assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
