"""What an incoming email is: a bounce (an RFC 3464 delivery status notification), a person's reply to one of
our emails, or something else — with the fields needed to lead it back to the message we sent.

`classify` never raises: bytes it cannot make sense of come back as `Other` with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

MAX_TEXT = 10_000

_STATUS_TYPES = {"message/delivery-status", "message/global-delivery-status"}
_HEADER_TYPES = {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
_ID = re.compile(r"<([^<>]*)>")
_ANGLE_ADDRESS = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+?)\s*>")
_BARE_ADDRESS = re.compile(r"([^<>\s@\"'(),;:]+@[^<>\s@\"'(),;:]+)")
_ADDRESSES = re.compile(r"[^<>\s@\"'(),;:]+@[^<>\s@\"'(),;:]+")
_8BIT = re.compile("[\udc80-\udcff]")
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# The first line of the quoted original in a reply: the attribution of mail clients in English and Chinese,
# Outlook's separators and the header block Chinese Outlook and Foxmail write above the original.
_QUOTE_START = re.compile(
    r"^\s*(?:on\s.*\swrote:|在.*[写寫]道[:：]|-{2,}\s*(?:original message|原始邮件|原始郵件)\s*-{2,}"
    r"|(?:发件人|寄件者)\s*[:：].*)\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*from\s*:", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*(?:sent|date|to|发送时间|收件人)\s*[:：]", re.IGNORECASE)
_HTML_HIDDEN = re.compile(r"<!--.*?-->|<(head|style|script|title)\b.*?</\1\s*>", re.S | re.I)
_HTML_QUOTE = re.compile(r"<blockquote\b(?:(?!<blockquote\b).)*?</blockquote\s*>", re.S | re.I)
_HTML_BREAK = re.compile(r"<(?:br|/?(?:p|div|li|tr|table|ul|ol|h\d))\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")
_CHARSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030"}


Notice = Literal["delayed", "relayed", "expanded"]


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block of a DSN: whom the message was for and what became of it.

    As RFC 3464 (2.3.3) reads the `Action`: only `failed` says the message could not be delivered; `delayed`
    says the MTA is still trying (not a failure), `relayed` and `expanded` that it handed the message on to
    where no report will come from, `delivered` that it arrived."""

    final_recipient: str
    original_recipient: str | None
    action: str
    status: str
    diagnostic: str | None
    will_retry_until: str | None = None

    @property
    def kind(self) -> Literal["hard", "soft"] | None:
        """A bounce: `hard` when the message failed for good (5.x.x: stop emailing the address), `soft` when
        the MTA gave up after temporary errors (4.x.x); None when the report is no failure."""
        if self.action == "failed":
            return "soft" if self.status.startswith("4") else "hard"
        if not self.action and self.status.startswith("5"):  # no Action at all: a permanent status still fails
            return "hard"
        return None

    @property
    def notice(self) -> Notice | None:
        """What a report that is no failure tells: `delayed` (still trying), `relayed` or `expanded`."""
        if self.action == "delayed":
            return "delayed"
        if self.action == "relayed":
            return "relayed"
        if self.action == "expanded":
            return "expanded"
        return None


@dataclass(frozen=True)
class Dsn:
    """A delivery status notification (bounce) about one or more of our messages; `addressed_to` are the
    addresses it was sent to (the original's envelope sender: a VERP return path names the message)."""

    message_id: str
    original_message_ids: tuple[str, ...]
    recipients: tuple[DsnRecipient, ...]
    addressed_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A person's answer to one of our messages; `text` is what they wrote, without the quoted original."""

    message_id: str
    in_reply_to: tuple[str, ...]
    sender: str
    subject: str
    text: str


@dataclass(frozen=True)
class Other:
    """Anything else (auto-replies, read receipts, unrelated mail, unparseable bytes), with why."""

    message_id: str
    reason: str


def message_ids(header_value: str) -> list[str]:
    """Every `<...>` message id in a header value, in order, without repeats; a lone bare `id@host` too."""
    found = ["<" + "".join(inner.split()) + ">" for inner in _ID.findall(header_value) if inner.strip()]
    bare = header_value.strip()
    if not found and "@" in bare and not any(c.isspace() or c in "<>" for c in bare):
        found = [f"<{bare}>"]
    return _unique(found)


def classify(raw: bytes) -> Dsn | Reply | Other:
    """Read one email as it came from the mailbox and say what it is."""
    fallback_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        return _classify(raw, fallback_id)
    except Exception as exc:  # malformed input must never stop a mailbox run
        return Other(fallback_id, f"unparseable message: {type(exc).__name__}: {exc}")


def _classify(raw: bytes, fallback_id: str) -> Dsn | Reply | Other:
    if not raw.strip():
        return Other(fallback_id, "empty message")
    msg = message_from_bytes(raw, policy=policy.default)
    own_id = next(iter(message_ids(_raw(msg, "Message-ID"))), fallback_id)
    if msg.get_content_type() == "multipart/report":
        parts = _subparts(msg)
        if any(p.get_content_type() in _STATUS_TYPES for p in parts):
            return _dsn(msg, parts, own_id)
        report_type = str(msg.get_param("report-type", "unknown")).lower()
        return Other(own_id, f"report of type {report_type}, not a delivery status")
    auto = _auto_reply(msg)
    if auto:
        return Other(own_id, auto)
    parents = _unique(message_ids(_raw(msg, "In-Reply-To")) + message_ids(_raw(msg, "References"))[::-1])
    if not parents:
        return Other(own_id, "neither a delivery status notification nor a reply (no In-Reply-To/References)")
    sender = _ANGLE_ADDRESS.search(_header(msg, "From")) or _BARE_ADDRESS.search(_header(msg, "From"))
    return Reply(
        own_id, tuple(parents), sender.group(1).lower() if sender else "", _header(msg, "Subject"), _reply_text(msg)
    )


def _dsn(msg: Message, parts: list[Message], own_id: str) -> Dsn:
    blocks = [fields for part in parts if part.get_content_type() in _STATUS_TYPES for fields in _blocks(part)]
    ids = [i for part in parts for headers in _original_headers(part) for i in message_ids(_raw(headers, "Message-ID"))]
    for name in ("X-Original-Message-ID", "Original-Message-ID"):
        ids += message_ids(_raw(msg, name))
        ids += [i for fields in blocks for i in message_ids(fields.get(name.lower(), ""))]
    if not ids:
        ids = message_ids(_raw(msg, "In-Reply-To")) + message_ids(_raw(msg, "References"))[::-1]
    recipients = (_recipient(fields) for fields in blocks)
    # Where the report was delivered: the mailbox's own headers, the To the MTA wrote, Postfix's note of the
    # original's sender.
    headers = " ".join(_raw(msg, name) for name in ("Delivered-To", "X-Original-To", "To"))
    senders = " ".join(fields.get("x-postfix-sender", "") for fields in blocks)
    addressed = [a.lower() for a in _ADDRESSES.findall(f"{headers} {senders.replace(';', ' ')}")]
    return Dsn(own_id, tuple(_unique(ids)), tuple(r for r in recipients if r is not None), tuple(_unique(addressed)))


def _subparts(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _original_headers(part: Message) -> list[Message]:
    """The headers of the returned message, if this DSN part holds them (as text or as a parsed message)."""
    ctype = part.get_content_type()
    if ctype in _HEADER_TYPES and not part.is_multipart():
        return [HeaderParser().parsestr(_decode(part).lstrip())]
    return _subparts(part)[:1] if ctype.startswith("message/") and ctype not in _STATUS_TYPES else []


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a `message/delivery-status` part: per-message fields, then one per recipient."""
    subs = _subparts(part)  # parsed by the email package: one header block each (the rest of a block: text)
    texts = [rest for rest in (sub.get_payload() for sub in subs) if isinstance(rest, str)] if subs else [_decode(part)]
    return [_fields(sub) for sub in subs] + [block for text in texts for block in _text_blocks(text)]


def _text_blocks(text: str) -> list[dict[str, str]]:
    chunks = _BLANK_LINE.split(text.replace("\r\n", "\n").strip())
    return [_fields(HeaderParser().parsestr(chunk)) for chunk in chunks if chunk.strip()]


def _fields(block: Message) -> dict[str, str]:
    """A block's fields by lower-case name, whitespace collapsed; the first of repeated fields wins."""
    return {name.strip().lower(): " ".join(str(value).split()) for name, value in reversed(list(block.raw_items()))}


def _recipient(fields: dict[str, str]) -> DsnRecipient | None:
    original = _address(fields.get("original-recipient", ""))
    final = _address(fields.get("final-recipient", "")) or original
    if not final:
        return None
    action = (fields.get("action", "").split() or [""])[0].lower()
    diagnostic = fields.get("diagnostic-code") or None
    if diagnostic:
        kind, semicolon, text = diagnostic.partition(";")
        if semicolon and " " not in kind.strip():
            diagnostic = text.strip() or None
    status = _STATUS.search(fields.get("status", "")) or _STATUS.search(diagnostic or "")
    return DsnRecipient(
        final,
        original or None,
        action,
        status.group(0) if status else fields.get("status", ""),
        diagnostic,
        fields.get("will-retry-until") or None,
    )


def _address(value: str) -> str:
    """`rfc822; Name@Example.COM` -> `name@example.com`."""
    _, _, address = value.rpartition(";")
    return address.strip().strip("<>").strip().lower()


def _auto_reply(msg: Message) -> str | None:
    """Why the message is an automatic answer (out of office, vacation, list software), or None."""
    submitted = _raw(msg, "Auto-Submitted").strip().lower()
    if submitted and submitted.split(";")[0].strip() != "no":
        return f"auto-reply (Auto-Submitted: {submitted})"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get_all(name) is not None:
            return f"auto-reply ({name})"
    precedence = _raw(msg, "Precedence").strip().lower()
    if precedence in {"bulk", "junk", "auto_reply"}:
        return f"auto-reply (Precedence: {precedence})"
    return None


def _raw(msg: Message, name: str) -> str:
    """A header's raw values, joined; never parsed by the policy, so a malformed header cannot raise."""
    wanted = name.lower()
    return " ".join(str(value) for key, value in msg.raw_items() if key.lower() == wanted)


def _header(msg: Message, name: str) -> str:
    """A header decoded: RFC 2047 encoded words, or undeclared 8-bit text (UTF-8, else GB18030)."""
    raw = _raw(msg, name)
    try:
        value = raw if _8BIT.search(raw) else str(msg.get(name, ""))
    except Exception:  # a header the policy cannot parse: its raw text will do
        value = raw
    return " ".join(_clean(value).split())


def _clean(text: str) -> str:
    """Undo surrogate escapes left by undeclared 8-bit bytes: UTF-8 if they are, else GB18030."""
    if not _8BIT.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", "replace")


def _decode(part: Message) -> str:
    """A text part's content as str, decoded with its charset (GB2312/GBK read as their superset GB18030)."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = part.get_content_charset()
    if declared and declared not in {"us-ascii", "ascii"}:  # MTAs label 8-bit text us-ascii too
        with contextlib.suppress(LookupError):
            return data.decode(_CHARSETS.get(declared, declared), "replace")
    return _clean(data.decode("ascii", "surrogateescape"))  # undeclared: UTF-8, else GB18030


def _text_parts(part: Message) -> list[Message]:
    """The inline text parts of a message, in order, not looking inside attached messages."""
    if part.get_content_maintype() == "multipart":
        return [text for sub in _subparts(part) for text in _text_parts(sub)]
    if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
        return [part]
    return []


def _reply_text(msg: Message) -> str:
    parts = _text_parts(msg)
    plain = [p for p in parts if p.get_content_subtype() == "plain"]
    markup = [p for p in parts if p.get_content_subtype() == "html"]
    text = _decode(plain[0]) if plain else _html_to_text(_decode(markup[0])) if markup else ""
    return _strip_quoted(text)[:MAX_TEXT]


def _strip_quoted(text: str) -> str:
    """The new text of a reply: `>` lines dropped, cut where the quoted original starts, trimmed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        following = next((n for n in lines[i + 1 : i + 3] if n.strip()), "")
        if (
            _QUOTE_START.match(line)
            or (line.strip().lower().startswith("on ") and _QUOTE_START.match(f"{line} {following}"))
            or (_OUTLOOK_FROM.match(line) and _OUTLOOK_NEXT.match(following))
        ):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()


def _html_to_text(markup: str) -> str:
    """The visible text of an HTML body: blocks on their own lines, `<blockquote>`s (quoted mail) left out."""
    text = _HTML_HIDDEN.sub("", " ".join(markup.split()))
    while (unquoted := _HTML_QUOTE.sub("", text)) != text:
        text = unquoted
    text = html.unescape(_HTML_TAG.sub("", _HTML_BREAK.sub("\n", text)))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(" ".join(line.split()) for line in text.split("\n")))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
