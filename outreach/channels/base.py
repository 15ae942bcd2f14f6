"""What every provider speaks: the message to send, the result of sending it, and the Provider interface.

A provider maps its vendor's errors to the project's error tree (outreach.core.errors: TransientError,
PermanentError and its kinds AddressInvalid, ConsentRevoked, WindowClosed) at its own boundary and nowhere
else, and hands each back as a SendResult (`SendResult.failed`). Callers never see a vendor exception or a
vendor code's meaning, only the outcome and its flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, get_args

from outreach.core.errors import AddressInvalid, ConsentRevoked, ProviderError, TransientError, WindowClosed

# The channels the engine sends on: the one list every other module takes its names from.
Channel = Literal["sms", "email", "whatsapp", "wechat"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)


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
    # The channel's reply window is closed (WhatsApp 24 h, WeChat 48 h).
    window_closed: bool = False

    @classmethod
    def failed(cls, message: OutgoingMessage, error: ProviderError) -> SendResult:
        """The result of a send that failed with one of the project's provider errors."""
        outcome = Outcome.TRANSIENT if isinstance(error, TransientError) else Outcome.PERMANENT
        return cls(
            message.delivery_id,
            outcome,
            error_code=error.code,
            error=str(error),
            address_invalid=isinstance(error, AddressInvalid),
            recipient_opted_out=isinstance(error, ConsentRevoked),
            window_closed=isinstance(error, WindowClosed),
        )

    @classmethod
    def sent(cls, message: OutgoingMessage, provider_id: str | None) -> SendResult:
        return cls(message.delivery_id, Outcome.SENT, provider_id=provider_id)


class SendHooks(Protocol):
    """What a provider tells its caller about each message as it goes, so that the ledger can follow it one
    message at a time (outreach.delivery.send_recorder)."""

    async def before(self, message: OutgoingMessage) -> bool:
        """Called right before the message is handed to the vendor, and awaited: False means "do not send
        it" (it is no longer this batch's), and the provider gives no result for it."""
        ...

    def after(self, result: SendResult) -> None:
        """Called as soon as a message's result is known, sent or not (also for one never handed over)."""
        ...


class NoHooks:
    """Hooks that let every message go and note nothing: for a provider used on its own."""

    async def before(self, message: OutgoingMessage) -> bool:
        return True

    def after(self, result: SendResult) -> None:
        return None


NO_HOOKS = NoHooks()


class Provider(Protocol):
    """Sends a batch of messages of one channel. Created per batch inside the batch's event loop."""

    name: str

    async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
        """One result per message that `hooks.before` let go or that failed before it was handed over, in
        any order, each also given to `hooks.after` as soon as it is known; never raises for a vendor error
        (an exception from the hooks goes through)."""
        ...
