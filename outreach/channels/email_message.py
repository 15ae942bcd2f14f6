"""One ledger row as a MIME email, and the Message-ID that leads a bounce or reply back to that row."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from outreach.channels.base import OutgoingMessage

# 7-bit clean bodies (quoted-printable or base64 chosen per part), so the MIME is the same whether or not the
# server offers 8BITMIME. Headers we add verbatim (`set_raw`) must not be refolded: Python folds a long
# unbroken value such as a signed unsubscribe URL into RFC 2047 encoded-words, which no mail client reads
# back as a URL in List-Unsubscribe.
EMAIL_POLICY = policy.SMTP.clone(cte_type="7bit", refold_source="none")
EMAIL_POLICY_UTF8 = EMAIL_POLICY.clone(utf8=True)

_MESSAGE_ID = re.compile(r"<?outreach\.(\d{1,19})\.[0-9a-f]{10}@[^<>@\s]+>?", re.IGNORECASE)
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


def recipient_address(to: str) -> str:
    """`to` as the single addr-spec to send to (an internationalised domain IDNA-encoded).

    Raises InvalidAddress for anything but exactly one well-formed address.
    """
    header = EmailMessage(policy=EMAIL_POLICY)
    try:
        header["To"] = to
        parsed = header["To"]
    except (ValueError, IndexError) as exc:
        raise InvalidAddress(f"invalid email address {to!r}: {exc}") from None
    defects = [d for d in parsed.defects if not isinstance(d, NonASCIILocalPartDefect)]
    addresses = parsed.addresses
    if defects or len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise InvalidAddress(f"invalid email address {to!r}")
    local, domain = addresses[0].username, addresses[0].domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidAddress(f"invalid email domain in {to!r}") from None
    return str(Address(username=local, domain=domain))


def needs_smtputf8(email: EmailMessage) -> bool:
    """True when the recipient's local part is not ASCII (RFC 6531: only an SMTPUTF8 server can take it)."""
    return not str(email["To"]).isascii()


def email_bytes(email: EmailMessage) -> bytes:
    """The message as sent on the wire (CRLF line ends, 7-bit bodies)."""
    return email.as_bytes(policy=EMAIL_POLICY_UTF8 if needs_smtputf8(email) else EMAIL_POLICY)


def message_id_for(delivery_id: int, idempotency_key: str, email_from: str) -> str:
    """A Message-ID that is the same on every attempt of one ledger row and names the row it came from."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:10]
    return f"<outreach.{delivery_id}.{digest}@{sender_domain(email_from)}>"


def delivery_id_from_message_id(value: str) -> int | None:
    """The delivery id inside a Message-ID made by `message_id_for`; None for any other Message-ID."""
    match = _MESSAGE_ID.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def build_email(message: OutgoingMessage, email_from: str, *, date: datetime | None = None) -> EmailMessage:
    """The row as an email: text/plain, or multipart/alternative of text and HTML when `message.html` is set;
    UTF-8; From, To, Subject, Date, the row's Message-ID (a deterministic one when it has none) and every header
    in `message.headers`, ASCII values kept verbatim.

    Raises InvalidAddress when `message.to` is not one email address, ValueError for any other message that
    cannot be expressed as an email (a header holding a line break, or one this function owns).
    """
    email = EmailMessage(policy=EMAIL_POLICY)
    email["From"] = email_from
    email["To"] = recipient_address(message.to)
    if message.subject is not None:
        email["Subject"] = message.subject  # non-ASCII becomes RFC 2047 encoded-words
    email["Date"] = format_datetime(date or datetime.now(UTC))
    message_id = message.message_id or message_id_for(
        message.delivery_id, f"{message.customer_id}:{message.delivery_id}", email_from
    )
    _add_header(email, "Message-ID", message_id)
    for name, value in message.headers.items():
        if name.lower() in _RESERVED:
            raise ValueError(f"header {name!r} is set by the email builder and cannot be overridden")
        _add_header(email, name, value)
    email.set_content(message.body, subtype="plain", charset="utf-8")
    if message.html is not None:
        email.add_alternative(message.html, subtype="html", charset="utf-8")
    return email


def _add_header(email: EmailMessage, name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name!r} may not contain a line break")
    del email[name]
    folded = _fold_at_spaces(name, value) if value.isascii() else None
    if folded is not None:
        # Verbatim: the value (a URL, a msg-id, `List-Unsubscribe=One-Click`) must reach the receiver as is.
        email.set_raw(name, folded)
    else:
        email[name] = value  # non-ASCII, or no way to fit it in lines: the policy encodes and folds it


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
