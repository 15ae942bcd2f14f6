"""Delivery status notifications (RFC 3464 multipart/report) as Postfix's bounce daemon writes them, with the
wording of its templates (bounce.cf.default): a failure ("Undelivered Mail Returned to Sender"), a delay
warning ("Delayed Mail (still being retried)", `Action: delayed`, `Will-Retry-Until:`) and a success report
("Successful Mail Delivery Report", `Action: relayed` / `expanded`), as they land in the bounce mailbox
(Dovecot adds Return-Path, Delivered-To and X-Original-To on delivery)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Literal

Report = Literal["failure", "delay", "success"]

SUBJECTS = {
    "failure": "Undelivered Mail Returned to Sender",
    "delay": "Delayed Mail (still being retried)",
    "success": "Successful Mail Delivery Report",
}

_NOTIFICATIONS = {
    "failure": (
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        "For further assistance, please send mail to postmaster.\r\n\r\n"
        "If you do so, please include this problem report. You can\r\n"
        "delete your own text from the attached returned message.\r\n\r\n"
        "                   The mail system\r\n"
    ),
    "delay": (
        "####################################################################\r\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
        "####################################################################\r\n\r\n"
        "Your message could not be delivered for more than 4 hour(s).\r\n"
        "It will be retried until it is 5 day(s) old.\r\n\r\n"
        "For further assistance, please send mail to postmaster.\r\n\r\n"
        "If you do so, please include this problem report. You can\r\n"
        "delete your own text from the attached returned message.\r\n\r\n"
        "                   The mail system\r\n"
    ),
    "success": (
        "Your message was successfully delivered to the destination(s)\r\n"
        "listed below. If the message was delivered to mailbox you will\r\n"
        "receive no further notifications. Otherwise you may still receive\r\n"
        "notifications of mail delivery errors from other systems.\r\n\r\n"
        "                   The mail system\r\n"
    ),
}

_RETURNED = {"failure": "Undelivered", "delay": "Delayed", "success": "Delivered"}
ARRIVAL = "Tue,  8 Oct 2024 17:30:01 +0800 (CST)"
REPORTED = format_datetime(datetime(2024, 10, 8, 21, 30, 12, tzinfo=timezone(timedelta(hours=8))))


def failed(address: str, status: str = "5.1.1", text: str = "User unknown in virtual mailbox table") -> dict[str, str]:
    """The per-recipient block of a failure, as Postfix writes it after the remote server refused RCPT TO."""
    code = "550" if status.startswith("5") else "452"
    return {
        "Final-Recipient": f"rfc822; {address}",
        "Original-Recipient": f"rfc822;{address}",
        "Action": "failed",
        "Status": status,
        "Remote-MTA": "dns; mx.mail.example.cn",
        "Diagnostic-Code": f"smtp; {code} {status} <{address}>: Recipient address rejected: {text}",
    }


def delayed(address: str, status: str = "4.4.1") -> dict[str, str]:
    """A delay warning's block: the remote host did not answer; Postfix keeps the message and retries."""
    return {
        "Final-Recipient": f"rfc822; {address}",
        "Original-Recipient": f"rfc822;{address}",
        "Action": "delayed",
        "Status": status,
        "Diagnostic-Code": "X-Postfix; connect to mx.mail.example.cn[203.0.113.5]:25: Connection timed out",
        "Will-Retry-Until": "Sun, 13 Oct 2024 17:30:01 +0800 (CST)",
    }


def relayed(address: str) -> dict[str, str]:
    """A success report's block (NOTIFY=SUCCESS): handed to a server that sends no reports of its own."""
    return {
        "Final-Recipient": f"rfc822; {address}",
        "Original-Recipient": f"rfc822;{address}",
        "Action": "relayed",
        "Status": "2.0.0",
        "Remote-MTA": "dns; mx.mail.example.cn",
        "Diagnostic-Code": "smtp; 250 2.0.0 Ok: queued as 4XkQ2m0ZzGz9rvS",
    }


def expanded(address: str) -> dict[str, str]:
    """A success report's block for an alias that Postfix expanded to its members."""
    return {
        "Final-Recipient": f"rfc822; {address}",
        "Original-Recipient": f"rfc822;{address}",
        "Action": "expanded",
        "Status": "2.0.0",
        "Diagnostic-Code": "X-Postfix; alias expanded",
    }


def postfix_dsn(
    original: bytes,
    recipients: list[dict[str, str]],
    *,
    report: Report = "failure",
    to: str = "bounces@bank.example",
    queue_id: str = "1A2B3C4D5E",
    subject: str | None = None,
    headers_only: bool = True,
    quoted: bool = True,
) -> bytes:
    """The DSN Postfix at mx.bank.example sends to `to` (the original's envelope sender) about `original`
    (its bytes as sent), as delivered into the mailbox at `to`; without `quoted`, it returns nothing of the
    original (as with `bounce_size_limit` exceeded, or an MTA that never does)."""
    boundary = f"{queue_id}.1728379812/mx.bank.example"
    head = {
        "Return-Path": "<>",
        "Delivered-To": to,
        "X-Original-To": to,
        "Received": f"by mx.bank.example (Postfix)\r\n\tid {queue_id}; Tue,  8 Oct 2024 21:30:12 +0800 (CST)",
        "Date": REPORTED,
        "From": "MAILER-DAEMON@mx.bank.example (Mail Delivery System)",
        "Subject": subject or SUBJECTS[report],
        "To": to,
        "Auto-Submitted": "auto-replied",
        "MIME-Version": "1.0",
        "Content-Type": f'multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding": "8bit",
        "Message-Id": f"<20241008133012.{queue_id}@mx.bank.example>",
    }
    per_message = {
        "Reporting-MTA": "dns; mx.bank.example",
        "X-Postfix-Queue-ID": queue_id,
        "X-Postfix-Sender": f"rfc822; {to}",
        "Arrival-Date": ARRIVAL,
    }
    status = "\r\n".join("".join(f"{k}: {v}\r\n" for k, v in block.items()) for block in [per_message, *recipients])
    # the notification's own lines, one per recipient: `<address>: what the server said`
    human = "".join(
        f"\r\n<{_after_semicolon(block['Final-Recipient'])}>: {_after_semicolon(block['Diagnostic-Code'])}\r\n"
        for block in recipients
    )
    returned = original.split(b"\r\n\r\n", 1)[0] + b"\r\n" if headers_only else original
    what = _RETURNED[report] + (" Message Headers" if headers_only else " Message")
    parts: list[bytes] = [
        b"Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        + b"This is the mail system at host mx.bank.example.\r\n\r\n"
        + _NOTIFICATIONS[report].encode("ascii")
        + human.encode("ascii"),
        b"Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        + status.encode("ascii"),
        f"Content-Description: {what}\r\n".encode()
        + (b"Content-Type: text/rfc822-headers\r\n" if headers_only else b"Content-Type: message/rfc822\r\n")
        + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + returned,
    ][: 3 if quoted else 2]
    top = "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode("ascii")
    body = b"".join(b"\r\n--" + boundary.encode() + b"\r\n" + part for part in parts)
    return top + b"\r\nThis is a MIME-encapsulated message.\r\n" + body + b"\r\n--" + boundary.encode() + b"--\r\n"


def _after_semicolon(field: str) -> str:
    return field.split(";", 1)[1].strip()
