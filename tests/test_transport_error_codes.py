"""A failure to talk to a server at all gets a stable error code (`connect`, `timeout`, `disconnected`,
`tls`), on every provider, so an operator can list and replay exactly those rows; vendor codes stay as the
server gave them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from outreach.channels.base import Outcome, OutgoingMessage, SendResult
from outreach.channels.smtp import SmtpProvider
from outreach.channels.twilio_sms import TwilioSmsProvider
from outreach.channels.wechat import WeChatProvider
from outreach.config import Settings
from tests.services import free_port
from tests.workdir import Workdir

EMAIL = OutgoingMessage(1, "c1", "email", to="ana@example.com", body="Hello", subject="Hi")
SMS = OutgoingMessage(2, "c2", "sms", to="+8613800138001", body="Hello")
WECHAT = OutgoingMessage(3, "c3", "wechat", to="oABCDEF1234567890", body="Hello")


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (the backlog does) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@contextmanager
def hanging_up_server() -> Iterator[int]:
    """Accepts each connection and closes it at once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def smtp(port: int, timeout: float = 5.0, query: str = "") -> list[SendResult]:
    provider = SmtpProvider(f"smtp://127.0.0.1:{port}{query}", "Bank <no-reply@bank.example>", timeout)
    return asyncio.run(provider.send_many([EMAIL]))


def twilio(port: int, timeout: float = 5.0) -> SendResult:
    settings = Settings(
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="secret-token", sms_from="+15005550006",
        twilio_api_base=f"http://127.0.0.1:{port}", twilio_timeout=timeout,
    )  # fmt: skip
    [result] = asyncio.run(TwilioSmsProvider(settings).send_many([SMS]))
    return result


def wechat(port: int, timeout: float = 5.0) -> SendResult:
    settings = Settings(
        wechat_app_id="wx123", wechat_app_secret="app-secret", wechat_api_base=f"http://127.0.0.1:{port}/",
        wechat_timeout=timeout,
    )  # fmt: skip
    [result] = asyncio.run(WeChatProvider(settings).send_many([WECHAT]))
    return result


def test_a_refused_connection_is_connect_on_every_provider() -> None:
    port = free_port()  # nothing listens there
    [mail] = smtp(port)
    assert (mail.outcome, mail.error_code) == (Outcome.TRANSIENT, "connect")
    assert mail.error == f"connection refused by 127.0.0.1:{port}"
    sms, social = twilio(port), wechat(port)
    assert (sms.outcome, sms.error_code) == (Outcome.TRANSIENT, "connect")
    assert (social.outcome, social.error_code) == (Outcome.TRANSIENT, "connect")
    assert "secret" not in f"{sms.error} {social.error}"


def test_a_server_that_never_answers_is_timeout() -> None:
    with silent_server() as port:
        [mail] = smtp(port, timeout=0.5)
        sms, social = twilio(port, timeout=0.5), wechat(port, timeout=0.5)
    assert [r.error_code for r in (mail, sms, social)] == ["timeout"] * 3
    assert mail.error == f"no answer from 127.0.0.1:{port} within 0.5s"


def test_a_server_that_hangs_up_is_disconnected() -> None:
    with hanging_up_server() as port:
        [mail] = smtp(port)
        sms = twilio(port)
    assert mail.error_code == "disconnected" and mail.outcome == Outcome.TRANSIENT
    assert sms.error_code in ("disconnected", "connect") and sms.outcome == Outcome.TRANSIENT


def test_starttls_required_but_not_offered_is_tls(smtp_server: object) -> None:
    port = smtp_server.port  # type: ignore[attr-defined]
    [mail] = smtp(port, query="?starttls=true")
    assert (mail.outcome, mail.error_code) == (Outcome.TRANSIENT, "tls")


def test_an_operator_lists_and_replays_refused_connections_by_code(desk: Workdir) -> None:
    desk.write("customers.csv", "id,name,email\nK1,Ana,ana@example.com\nK2,Bo,bo@example.com\n")
    desk.ok("customers", "import", "customers.csv")
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
              email: {subject: "Hi {{ name }}", text: "Your statement is ready."}
        """,
    )
    down = {"OUTREACH_SMTP_URL": f"smtp://127.0.0.1:{free_port()}", "OUTREACH_MAX_ATTEMPTS": "1"}
    assert desk.run("campaigns", "run", "notice.yaml", **down).returncode == 1
    listed = desk.json("failures", "list", **down)
    assert {group["error_code"]: group["count"] for group in listed["groups"]} == {"connect": 2}
    replay = desk.json("failures", "replay", "--error-code", "connect", "--dry-run", **down)
    assert replay["selected"] == 2
