"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives and can be told to refuse."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

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


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.behaviour = SmtpBehaviour()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self.behaviour.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.behaviour.data_failures > 0:
                self.behaviour.data_failures -= 1
                return self.behaviour.data_reply
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        with self.lock:
            return [m for m in self.received if address in m.rcpt_tos]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.handler = RecordingHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port)
        self.port = port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
