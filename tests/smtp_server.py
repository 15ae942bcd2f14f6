"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives and can be told to refuse."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # The client's (host, port): mails over one connection share it.
    peer: Any = None
    # The user name the session logged in with, when the server takes AUTH.
    login: str | None = None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpBehaviour:
    """What the server answers: by recipient at RCPT time, or for every DATA a number of times."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    # Answer DATA with this reply for the next `data_failures` messages, then accept again.
    data_reply: str = "451 4.3.0 Try again later"
    data_failures: int = 0
    # Drop the connection without a reply at DATA for the next `data_disconnects` messages.
    data_disconnects: int = 0
    # When the server takes AUTH: answer every attempt with this reply instead of checking the password.
    auth_reply: str | None = None


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.behaviour = SmtpBehaviour()
        self.users: dict[str, str] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self.behaviour.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.behaviour.data_disconnects > 0:
                self.behaviour.data_disconnects -= 1
                server.transport.close()
                return "421 4.4.2 Connection dropped"  # never reaches the client
            if self.behaviour.data_failures > 0:
                self.behaviour.data_failures -= 1
                return self.behaviour.data_reply
            auth = session.auth_data
            login = auth.login.decode() if isinstance(auth, LoginPassword) else None
            self.received.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), session.peer, login)
            )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        with self.lock:
            return [m for m in self.received if address in m.rcpt_tos]

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        """Checks AUTH PLAIN / LOGIN against `users` (given to SmtpServer), or answers `behaviour.auth_reply`."""
        if self.behaviour.auth_reply:
            return AuthResult(success=False, handled=False, message=self.behaviour.auth_reply)
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    @property
    def connections(self) -> int:
        """How many client connections delivered at least one mail."""
        with self.lock:
            return len({m.peer for m in self.received})


class SmtpServer:
    """`users` (login -> password) makes the server offer AUTH (without TLS, as this is loopback only)."""

    def __init__(self, port: int, users: dict[str, str] | None = None) -> None:
        self.handler = RecordingHandler()
        self.handler.users = dict(users or {})
        auth: dict[str, Any] = {"authenticator": self.handler.authenticate, "auth_require_tls": False}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **(auth if users else {}))
        self.port = port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
