"""A failure to talk to a server at all gets a stable error code (`connect`, `timeout`, `disconnected`, `tls`,
`http_<status>` for a gateway page) on every provider, so an operator can list and replay exactly those rows;
vendor codes stay as the server gave them. Real sockets on loopback throughout."""

from __future__ import annotations

import asyncio
import datetime
import errno
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtplib import SMTPConnectError, SMTPResponseException
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outreach.channels.base import Outcome, OutgoingMessage, SendResult
from outreach.channels.smtp import SmtpProvider
from outreach.channels.transport_errors import classify
from outreach.channels.twilio_sms import TwilioSmsProvider
from outreach.channels.wechat import TokenCache, WeChatProvider
from outreach.core.settings import Settings
from tests.loopback_http import LoopbackHandler, LoopbackServer
from tests.services import free_port
from tests.smtp_server import RecordingHandler, SmtpServer
from tests.workdir import Workdir

EMAIL = OutgoingMessage(1, "c1", "email", to="ana@example.com", body="Hello", subject="Hi")
SMS = OutgoingMessage(2, "c2", "sms", to="+8613800138001", body="Hello")
WECHAT = OutgoingMessage(3, "c3", "wechat", to="oABCDEF1234567890", body="Hello")
PASSWORD = "smtp-pass-w0rd"
AUTH_TOKEN = "twilio-auth-token-value"
APP_SECRET = "wechat-app-secret-value"
SECRETS = (PASSWORD, AUTH_TOKEN, APP_SECRET)


# --- servers that misbehave ------------------------------------------------------------------------------------


def closed_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (the backlog does) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@contextmanager
def accepting_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Accepts each connection and closes it at once, or (with `tls`) first answers the TLS handshake."""
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
            with conn:
                if tls is not None:
                    conn.settimeout(10)
                    try:
                        with tls.wrap_socket(conn, server_side=True) as wrapped:
                            wrapped.recv(1)
                    except (OSError, ssl.SSLError):
                        pass  # the client refused our certificate, as it should

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1 (no client trusts it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


class GatewayServer(LoopbackServer[str]):
    """Answers every request with `status` and an HTML page, as a load balancer does when the API is down."""

    def __init__(self, status: int) -> None:
        server = self

        class Handler(LoopbackHandler):
            def _answer(self) -> None:
                self.read_body()
                with server.lock:
                    server.requests.append(self.path)
                page = f"<html><body><h1>{status} Bad Gateway</h1><hr>nginx</body></html>".encode()
                self.reply(status, page, "text/html")

            do_GET = do_POST = _answer

        super().__init__(Handler, "gateway-server")


# --- the providers, pointed at them ----------------------------------------------------------------------------


def smtp(url: str, timeout: float = 10.0) -> SendResult:
    provider = SmtpProvider(url, "Bank <no-reply@bank.example>", timeout, local_hostname="client.test")
    [result] = asyncio.run(provider.send_many([EMAIL]))
    return result


def twilio(base: str, timeout: float = 10.0) -> SendResult:
    settings = Settings(
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token=AUTH_TOKEN, sms_from="+15005550006",
        twilio_api_base=base, twilio_timeout=timeout,
    )  # fmt: skip
    [result] = asyncio.run(TwilioSmsProvider(settings).send_many([SMS]))
    return result


def wechat(base: str, timeout: float = 10.0) -> SendResult:
    settings = Settings(
        wechat_app_id="wx123", wechat_app_secret=APP_SECRET, wechat_api_base=base + "/", wechat_timeout=timeout
    )
    [result] = asyncio.run(WeChatProvider(settings, tokens=TokenCache()).send_many([WECHAT]))
    return result


def assert_transient(results: dict[str, SendResult], code: str) -> None:
    assert {name: (r.outcome, r.error_code) for name, r in results.items()} == {
        name: (Outcome.TRANSIENT, code) for name in results
    }, {name: r.error for name, r in results.items()}
    for result in results.values():
        assert result.error and not any(secret in result.error for secret in SECRETS), result.error


# --- one test per kind of failure ------------------------------------------------------------------------------


def test_a_refused_connection_is_connect_on_every_provider() -> None:
    port = closed_port()
    results = {
        "smtp": smtp(f"smtp://mailer:{PASSWORD}@127.0.0.1:{port}"),
        "twilio": twilio(f"http://127.0.0.1:{port}"),
        "wechat": wechat(f"http://127.0.0.1:{port}"),
    }
    assert_transient(results, "connect")
    assert results["smtp"].error == f"connection refused by 127.0.0.1:{port}"
    assert results["twilio"].error == "connection refused by Twilio"
    assert results["wechat"].error == "connection refused by WeChat (token)"


def test_a_server_that_accepts_and_never_answers_is_timeout() -> None:
    with silent_server() as port:
        results = {
            "smtp": smtp(f"smtp://127.0.0.1:{port}", timeout=0.5),
            "twilio": twilio(f"http://127.0.0.1:{port}", timeout=0.5),
            "wechat": wechat(f"http://127.0.0.1:{port}", timeout=0.5),
        }
    assert_transient(results, "timeout")
    assert results["smtp"].error == f"no answer from 127.0.0.1:{port} within 0.5s"
    assert "may have been sent" in (results["twilio"].error or "")


def test_a_server_that_accepts_and_hangs_up_is_disconnected() -> None:
    with accepting_server() as port:
        results = {
            "smtp": smtp(f"smtp://127.0.0.1:{port}"),
            "twilio": twilio(f"http://127.0.0.1:{port}"),
            "wechat": wechat(f"http://127.0.0.1:{port}"),
        }
    assert_transient(results, "disconnected")
    assert results["smtp"].error == f"127.0.0.1:{port} closed the connection"


def test_a_session_dropped_at_data_is_disconnected_and_the_next_message_goes(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.data_disconnects = 1
    provider = SmtpProvider(smtp_server.url, "Bank <no-reply@bank.example>", 10.0, local_hostname="client.test")
    second = OutgoingMessage(4, "c4", "email", to="bo@example.com", body="Hello", subject="Hi")
    dropped, sent = sorted(asyncio.run(provider.send_many([EMAIL, second])), key=lambda r: r.delivery_id)
    assert (dropped.outcome, dropped.error_code) == (Outcome.TRANSIENT, "disconnected")
    assert sent.outcome is Outcome.SENT


def test_starttls_required_but_not_offered_is_tls(smtp_server: SmtpServer) -> None:
    result = smtp(f"smtp://mailer:{PASSWORD}@127.0.0.1:{smtp_server.port}?starttls=true")
    assert_transient({"smtp": result}, "tls")
    assert result.error == f"127.0.0.1:{smtp_server.port} does not offer STARTTLS, which the configuration requires"
    assert smtp_server.handler.received == []


def test_an_untrusted_certificate_is_tls_on_every_provider(self_signed: ssl.SSLContext) -> None:
    with accepting_server(tls=self_signed) as port:
        results = {
            "smtps": smtp(f"smtps://mailer:{PASSWORD}@127.0.0.1:{port}"),
            "twilio": twilio(f"https://127.0.0.1:{port}"),
            "wechat": wechat(f"https://127.0.0.1:{port}"),
        }
    assert_transient(results, "tls")
    assert results["smtps"].error == f"TLS certificate of 127.0.0.1:{port} not accepted: self-signed certificate"
    assert all("self-signed certificate" in (r.error or "") for r in results.values())


def test_starttls_to_an_untrusted_certificate_is_tls(self_signed: ssl.SSLContext) -> None:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=self_signed)
    controller.start()
    try:
        result = smtp(f"smtp://127.0.0.1:{controller.port}?starttls=true")
    finally:
        controller.stop()
    assert_transient({"smtp": result}, "tls")
    assert "self-signed certificate" in (result.error or "")
    assert handler.received == []


@pytest.mark.parametrize("status", [502, 503])
def test_a_gateway_page_instead_of_the_api_is_http_status(status: int) -> None:
    with GatewayServer(status) as gateway:
        results = {"twilio": twilio(gateway.base_url), "wechat": wechat(gateway.base_url)}
        assert len(gateway.recorded()) == 2  # each provider asked once: these are answers, not lost connections
    assert_transient(results, f"http_{status}")
    assert (
        results["twilio"].error
        == f"Twilio HTTP {status} without a Twilio error (a gateway answered): Unable to create record"
    )


def test_vendor_codes_are_not_transport_codes(smtp_server: SmtpServer) -> None:
    smtp_server.handler.behaviour.rcpt_replies["ana@example.com"] = "451 4.3.0 Try again later"
    assert smtp(smtp_server.url).error_code == "451"
    assert classify(SMTPResponseException(421, "4.3.2 shutting down"), "mx:25") is None


def test_names_that_do_not_resolve_and_unreachable_networks_are_connect() -> None:
    # The OS errors themselves, raised the way aiosmtplib raises them (a real DNS lookup would need a network).
    def connect_error(cause: OSError) -> SMTPConnectError:
        try:
            raise SMTPConnectError(f"Error connecting to mx.bank.example on port 25: {cause}") from cause
        except SMTPConnectError as exc:
            return exc

    dns = classify(connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")), "mx:25")
    unreachable = classify(connect_error(OSError(errno.ENETUNREACH, "Network is unreachable")), "mx:25")
    assert dns is not None and (dns.code, dns.description) == (
        "connect",
        "cannot resolve the host of mx:25: Name or service not known",
    )
    assert unreachable is not None and (unreachable.code, unreachable.description) == (
        "connect",
        "mx:25 is unreachable: Network is unreachable",
    )


# --- what the operator sees ------------------------------------------------------------------------------------


def test_an_operator_lists_and_replays_refused_connections_by_code(desk: Workdir) -> None:
    desk.write("customers.csv", "id,name,email,consent_email\nK1,Ana,ana@example.com,yes\nK2,Bo,bo@example.com,yes\n")
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
    port = closed_port()
    down = {"OUTREACH_SMTP_URL": f"smtp://mailer:{PASSWORD}@127.0.0.1:{port}", "OUTREACH_MAX_ATTEMPTS": "1"}
    assert desk.run("campaigns", "run", "notice.yaml", **down).returncode == 1

    listed = desk.json("failures", "list", **down)
    assert [(g["error_code"], g["count"]) for g in listed["groups"]] == [("connect", 2)]
    assert {(r["customer"], r["status"], r["error_code"]) for r in listed["rows"]} == {
        ("K1", "dead", "connect"),
        ("K2", "dead", "connect"),
    }
    assert f"connection refused by 127.0.0.1:{port}" in listed["groups"][0]["sample_message"]
    assert PASSWORD not in str(listed)
    table = desk.ok("failures", "list", COLUMNS="200", **down).stdout
    assert "connect" in table and PASSWORD not in table

    assert desk.json("failures", "replay", "--error-code", "timeout", "--dry-run", **down)["selected"] == 0
    replay = desk.json("failures", "replay", "--error-code", "connect", "--dry-run", **down)
    assert (replay["dry_run"], replay["selected"], replay["requeued"]) == (True, 2, 2)
    assert [(g["status"], g["error_code"], g["rows"]) for g in replay["groups"]] == [("dead", "connect", 2)]
    # A dry run changes nothing.
    assert [g["count"] for g in desk.json("failures", "list", **down)["groups"]] == [2]
