"""What every provider speaks: the message to send, the result of sending it, and the Provider interface.

A provider maps its vendor's errors to an Outcome at its own boundary and nowhere else:
TRANSIENT (try again later: SMTP 4xx, HTTP 429/5xx, timeouts, refused connections) or PERMANENT (SMTP 5xx,
Twilio 21211 invalid number, 21610 recipient opted out). Callers never see a vendor exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class OutgoingMessage:
    """One ledger row, ready for a provider."""

    delivery_id: int
    customer_id: str
    channel: str
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Deterministic per ledger row, so a bounce or reply leads back to it (email only).
    message_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    outcome: Outcome
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    # The address itself is unusable (invalid number, no such mailbox): mark it so on the profile.
    address_invalid: bool = False
    # The recipient blocked us at the provider (Twilio 21610): their consent on this channel is gone.
    recipient_opted_out: bool = False

    @classmethod
    def sent(cls, message: OutgoingMessage, provider_id: str | None) -> SendResult:
        return cls(message.delivery_id, Outcome.SENT, provider_id=provider_id)

    @classmethod
    def transient(cls, message: OutgoingMessage, error: str, code: str | None = None) -> SendResult:
        return cls(message.delivery_id, Outcome.TRANSIENT, error_code=code, error=error)

    @classmethod
    def permanent(
        cls,
        message: OutgoingMessage,
        error: str,
        code: str | None = None,
        *,
        address_invalid: bool = False,
        recipient_opted_out: bool = False,
    ) -> SendResult:
        return cls(
            message.delivery_id,
            Outcome.PERMANENT,
            error_code=code,
            error=error,
            address_invalid=address_invalid,
            recipient_opted_out=recipient_opted_out,
        )


class Provider(Protocol):
    """Sends a batch of messages of one channel. Created per batch inside the batch's event loop."""

    name: str

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message, in any order; never raises for a vendor error."""
        ...
