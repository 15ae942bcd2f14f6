"""One ledger row as a MIME email, and the Message-ID that leads a bounce or reply back to that row."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from outreach.channels.base import OutgoingMessage
from outreach.core.errors import InputError

_MESSAGE_ID = re.compile(r"<?outreach\.(\d{1,19})\.([0-9a-f]{10})@[^<>@\s]+>?", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ':' (RFC 5322 ftext)
_SOFT_LINE, _MAX_LINE = 78, 998  # RFC 5322 line lengths, CRLF excluded
# Headers build_email owns; message.headers may not replace them (an overridden Message-ID would break the
# bounce link, a second To or From would make the message ambiguous).
_RESERVED = frozenset(
    {"from", "to", "cc", "bcc", "date", "message-id", "subject", "mime-version", "content-type"}
    | {"content-transfer-encoding"}
)


def sender_domain(email_from: str) -> str:
    """The domain of the From address (IDNA-encoded), or `localhost` when it has none."""
    domain = parseaddr(email_from)[1].rpartition("@")[2].strip().lower()
    if not domain:
        return "localhost"
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return domain


class InvalidAddress(ValueError):
    """The recipient is not one usable email address."""


# One addr-spec, no display name, no list: what the importer's validation leaves in a profile.
_ADDR_SPEC = re.compile(r"[^\s@<>(),;:\"\[\]\\]+@[^\s@<>(),;:\"\[\]\\]+")


def recipient_address(to: str) -> str:
    """`to` as the single addr-spec to send to (an internationalised domain IDNA-encoded).

    Raises InvalidAddress for anything but exactly one well-formed address.
    """
    address = to.strip()
    if not _ADDR_SPEC.fullmatch(address):
        raise InvalidAddress(f"invalid email address {to!r}")
    local, _, domain = address.rpartition("@")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddress(f"invalid email address {to!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidAddress(f"invalid email domain in {to!r}") from None
    return f"{local}@{domain}"


def message_digest(idempotency_key: str) -> str:
    """The check of a ledger row inside its Message-ID and return path: ten hex digits of its key's SHA-256."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:10]


def message_id_for(delivery_id: int, idempotency_key: str, email_from: str) -> str:
    """A Message-ID that is the same on every attempt of one ledger row and names the row it came from."""
    return f"<outreach.{delivery_id}.{message_digest(idempotency_key)}@{sender_domain(email_from)}>"


def delivery_id_from_message_id(value: str) -> int | None:
    """The delivery id inside a Message-ID made by `message_id_for`; None for any other Message-ID."""
    match = _MESSAGE_ID.fullmatch(value.strip())
    return int(match.group(1)) if match else None


class ReturnPath:
    """The envelope sender (SMTP `MAIL FROM`; the receiving server writes it as `Return-Path`), where bounces
    go. A fixed address, or VERP: `{id}` in its local part (`bounces+{id}@bank.example`), or a local part
    ending in `+` (`bounces+@bank.example`, the same), becomes each message's own token
    (`bounces+4711.3f9a2c01de@bank.example`: the ledger row's id and the check of its Message-ID), so a
    bounce names its message by the address it was sent to, even when it quotes nothing of the message.
    The mailbox must take such addresses (Postfix: `recipient_delimiter = +`)."""

    PLACEHOLDER = "{id}"

    def __init__(self, template: str, setting: str = "email_return_path") -> None:
        text = template.strip()
        local, at, domain = text.rpartition("@")
        if local.endswith("+") and self.PLACEHOLDER not in local:
            local += self.PLACEHOLDER
        problem = None
        if not at or not local or not domain:
            problem = "is not an email address (like bounces@bank.example, or bounces+{id}@bank.example)"
        elif self.PLACEHOLDER in domain or local.count(self.PLACEHOLDER) > 1:
            problem = "may hold {id} once, in the part before the @"
        else:
            try:
                recipient_address(local.replace(self.PLACEHOLDER, "0.0000000000") + "@" + domain)
            except InvalidAddress:
                problem = "is not an email address (like bounces@bank.example, or bounces+{id}@bank.example)"
        if problem is not None:
            raise InputError.single(setting, f"{template!r} {problem}")
        self.local, self.domain = local, domain
        self.verp = self.PLACEHOLDER in local
        prefix, _, suffix = local.partition(self.PLACEHOLDER)
        self._pattern = re.compile(
            re.escape(prefix) + r"(\d{1,19})\.([0-9a-f]{10})" + re.escape(suffix) + "@" + re.escape(domain),
            re.IGNORECASE,
        )

    def address_for(self, message_id: str) -> str:
        """The envelope sender of the message with this Message-ID (made by `message_id_for`)."""
        match = _MESSAGE_ID.fullmatch(message_id.strip())
        if not self.verp:
            return f"{self.local}@{self.domain}"
        prefix, _, suffix = self.local.partition(self.PLACEHOLDER)
        if match is None:  # not one of our Message-IDs: the plain address, without the tag
            return f"{prefix.rstrip('+')}{suffix}@{self.domain}"
        return f"{prefix}{match[1]}.{match[2].lower()}{suffix}@{self.domain}"

    def delivery_of(self, address: str) -> tuple[int, str] | None:
        """(ledger row id, check) named by a VERP address of this return path; None for any other address."""
        match = self._pattern.fullmatch(address.strip().strip("<>"))
        return (int(match[1]), match[2].lower()) if self.verp and match else None


@dataclass(frozen=True)
class WireEmail:
    """An email ready for SMTP: the envelope recipient and the exact bytes of the message."""

    recipient: str
    data: bytes
    message_id: str
    # The recipient's local part is not ASCII: only a server offering SMTPUTF8 (RFC 6531) can take it.
    smtputf8: bool


def render_email(message: OutgoingMessage, email_from: str, *, date: datetime | None = None) -> WireEmail:
    """The row as an email: text/plain, or multipart/alternative of text and HTML when `message.html` is set;
    UTF-8 bodies (7-bit when ASCII, base64 otherwise); From, To, Subject (RFC 2047 when not ASCII), Date, the
    row's Message-ID and every header in `message.headers`, ASCII values kept verbatim.

    Written straight to bytes: the standard library's `EmailMessage` takes about a millisecond a message,
    which capped a worker process at under a thousand emails a second.

    Raises InvalidAddress when `message.to` is not one email address, ValueError for any other message that
    cannot be expressed as an email (a header holding a line break, or one this function owns).
    """
    recipient = recipient_address(message.to)
    message_id = message.message_id or message_id_for(
        message.delivery_id, f"{message.customer_id}:{message.delivery_id}", email_from
    )
    lines = [
        _header("From", _from_header(email_from)),
        _header("To", recipient),
        _header("Date", format_datetime(date or datetime.now(UTC))),
        _header("Message-ID", message_id),
    ]
    if message.subject is not None:
        lines.append(_header("Subject", message.subject))
    for name, value in message.headers.items():
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the email builder and cannot be overridden")
        lines.append(_header(name, value))
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    if message.html is None:
        body = _text_part(message.body, "plain")
    else:
        boundary = f"=_outreach_{message.delivery_id}_{secrets.token_hex(8)}"
        body = (
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()
            + _text_part(message.body, "plain")
            + f"\r\n--{boundary}\r\n".encode()
            + _text_part(message.html, "html")
            + f"\r\n--{boundary}--\r\n".encode()
        )
    return WireEmail(recipient, head + body, message_id, smtputf8=not recipient.isascii())


@functools.lru_cache(maxsize=16)
def _from_header(email_from: str) -> str:
    name, address = parseaddr(email_from)
    if not address:
        raise ValueError(f"email_from {email_from!r} has no email address")
    return formataddr((name, address), charset="utf-8")


def _header(name: str, value: str) -> str:
    """`Name: value` for the wire: ASCII kept verbatim (folded at spaces), anything else RFC 2047 encoded."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name!r} may not contain a line break")
    if value.isascii():
        folded = _fold_at_spaces(name, value)
        if folded is not None:
            # Verbatim: the value (a URL, a msg-id, `List-Unsubscribe=One-Click`) must reach the receiver as is.
            return f"{name}: " + folded.replace("\n", "\r\n")
    return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _text_part(text: str, subtype: str) -> bytes:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    canonical = "\r\n".join(lines).encode("utf-8")
    if canonical.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        encoding, payload = "7bit", canonical + b"\r\n"
    else:
        encoding, payload = "base64", base64.encodebytes(canonical).replace(b"\n", b"\r\n")
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return head.encode() + payload


def _fold_at_spaces(name: str, value: str) -> str | None:
    """`value` folded before spaces to lines of at most 78 characters where it can be (998 at the most);
    unfolding gives back `value` exactly. None when some piece cannot fit in 998 characters."""
    lines: list[str] = []
    line = f"{name}: "
    pieces = value.split(" ")
    line += pieces[0]
    for piece in pieces[1:]:
        # Never leave a line of only whitespace (RFC 5322 §3.2.2) and never fold before an empty piece.
        if piece and line.strip() and len(line) + 1 + len(piece) > _SOFT_LINE:
            lines.append(line)
            line = ""
        line += " " + piece
    lines.append(line)
    if any(len(x) > _MAX_LINE for x in lines):
        return None
    return "\n".join(lines)[len(name) + 2 :]
