"""The project's error tree.

OutreachError
├── InputError          bad input from a user's file or command line: exit status 2, nothing written
├── SegmentError        a segment expression outside the allowed forms (outreach.segments.syntax)
├── RenderError         a template that cannot be rendered for a customer (outreach.campaigns.rendering)
│   └── MissingData     ... because the customer lacks a value it needs
├── MailboxError        the inbound mailbox cannot be read (outreach.inbound.mail_sources)
├── DecryptionError     a WeChat push that cannot be decrypted (outreach.web.wechat_crypto)
└── ProviderError       raised inside a provider and mapped to a send result at its boundary
    ├── TransientError  worth retrying later (SMTP 4xx, HTTP 429/5xx, timeouts, refused connections)
    └── PermanentError  retrying cannot help (SMTP 5xx, HTTP 4xx, a refused message)
        ├── AddressInvalid  the address cannot receive: marked invalid on the profile
        ├── ConsentRevoked  the recipient blocked the bank at the provider: consent revoked
        └── WindowClosed    outside the reply window of WhatsApp (24 h) or WeChat (48 h)

Each provider maps its vendor's codes to these classes in one place (outreach.channels.*), and the ledger
records what they mean (outreach.delivery.outcomes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located as precisely as the input allows."""

    path: str
    line: int | None
    col: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.message}"


class OutreachError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(OutreachError):
    """Input that cannot be accepted; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line or 0, p.col or 0, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str, line: int | None = None, col: int | None = None) -> InputError:
        return cls([Problem(path, line, col, message)])


class ProviderError(OutreachError):
    """A provider could not deliver a message. `code` is a stable error code: the vendor's own (Twilio 21211,
    WeChat 45015, an SMTP reply code) or the project's (`timeout`, `connect`, `http_502`, ...).

    Providers map their vendor's errors to these classes in one place each (outreach.channels.*) and hand
    them back as a SendResult (`SendResult.failed`); nothing outside `channels/` reads a vendor's code.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(ProviderError):
    """Worth retrying after a delay: rate limits, busy servers, timeouts, lost connections."""


class PermanentError(ProviderError):
    """Retrying the same message cannot succeed."""


class AddressInvalid(PermanentError):
    """The address itself cannot receive (invalid number, no such mailbox, unknown openid): it is marked
    invalid on the profile."""


class ConsentRevoked(PermanentError):
    """The recipient blocked the bank at the provider (Twilio 21610 STOP, WeChat 43004 unfollowed): their
    consent on the channel is revoked."""


class WindowClosed(PermanentError):
    """A free-form message outside the channel's reply window (WhatsApp 24 h: Twilio 63016; WeChat 48 h:
    45015)."""
