"""Stable error codes for transport failures, so that an operator can find and replay them by code.

A provider that could not talk to its server at all has no vendor code to record. It records one of these
instead (the code `outreach failures list` shows and `outreach failures replay --error-code X` selects):

* `connect` — no connection: refused, reset before the request went out, the host name does not resolve, the
  network or host is unreachable.
* `timeout` — the connection, the greeting or the answer did not arrive within the configured timeout.
* `tls` — the TLS handshake failed (certificate not trusted, protocol mismatch), or STARTTLS is required and
  the server does not offer it.
* `disconnected` — the server closed (or reset) the connection in the middle of the conversation, the SMTP
  greeting included.
* `http_<status>` (HTTP APIs) — the gateway answered a status without the vendor's own error body, e.g. a 502
  page from a load balancer. WeChat recorded `http_502` before these codes existed; Twilio uses the same form.

Vendor codes win: an SMTP reply (550, 451, 421 at the greeting, 454 to STARTTLS), a Twilio error code
(21211, 20429) or a WeChat errcode is what the server said, and is recorded as it is.

All of these are TRANSIENT, a certificate verification failure included. The outcome describes the message,
and nothing is wrong with the message or its address: the same send succeeds once the server side is right
again. A certificate is often fixed without us (an expired one is renewed, a proxy that intercepted TLS is
removed), and retries then go through on their own. When it needs us (a CA bundle to configure), the rows end
`dead` after their attempts and the operator replays exactly them with `--error-code tls` once the
configuration is fixed; `failed` would not make that any easier, and would hide an outage behind messages
that look individually undeliverable.

The descriptions are for humans ("connection refused by 127.0.0.1:2525") and are built from the host and
port and the OS or TLS reason only, never from URLs or credentials; providers still mask what they record.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from aiosmtplib import SMTPConnectError, SMTPException, SMTPResponseException, SMTPServerDisconnected

CONNECT = "connect"
TIMEOUT = "timeout"
TLS = "tls"
DISCONNECTED = "disconnected"
TRANSPORT_CODES = frozenset({CONNECT, TIMEOUT, TLS, DISCONNECTED})

_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})
_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


@dataclass(frozen=True)
class TransportFailure:
    """A stable `code` (one of TRANSPORT_CODES) and a `description` for the operator, naming the server."""

    code: str
    description: str


def http_status_code(status: int) -> str:
    """The code for an HTTP answer that carries no vendor error code: `http_502`."""
    return f"http_{status}"


def classify(exc: BaseException, where: str, *, timeout: float | None = None) -> TransportFailure | None:
    """The transport failure `exc` stands for, talking to `where` (host:port); None when it is not one (a
    vendor answer, an invalid URL, a bug). `timeout` (seconds) goes into the description of a timeout."""
    if isinstance(exc, SMTPResponseException):
        return None  # the server answered: its reply code is the code
    chain = list(_chain(exc))
    # aiohttp's TLS errors are ssl.SSLError too, but only the one they wrap has the details.
    tls_errors = sorted(
        (link for link in chain if isinstance(link, ssl.SSLError)), key=lambda e: isinstance(e, aiohttp.ClientError)
    )
    for tls_error in tls_errors:
        if isinstance(tls_error, ssl.SSLCertVerificationError):
            why = getattr(tls_error, "verify_message", None) or "not trusted"
            return TransportFailure(TLS, f"TLS certificate of {where} not accepted: {why}")
    if tls_errors:
        return TransportFailure(TLS, f"TLS handshake with {where} failed: {_ssl_reason(tls_errors[0])}")
    if isinstance(exc, SMTPException) and "STARTTLS" in exc.message and "not supported" in exc.message:
        return TransportFailure(TLS, f"{where} does not offer STARTTLS, which the configuration requires")
    if any(isinstance(link, TimeoutError) for link in chain):
        within = f" within {timeout:g}s" if timeout is not None else " in time"
        return TransportFailure(TIMEOUT, f"no answer from {where}{within}")
    if any(isinstance(link, SMTPServerDisconnected | aiohttp.ServerDisconnectedError) for link in chain):
        return TransportFailure(DISCONNECTED, f"{where} closed the connection")
    for link in chain:
        if isinstance(link, socket.gaierror):
            return TransportFailure(CONNECT, f"cannot resolve the host of {where}: {link.strerror or link}")
    connecting = isinstance(exc, aiohttp.ClientConnectorError | SMTPConnectError)
    for link in chain:
        if isinstance(link, ConnectionRefusedError) or getattr(link, "errno", None) == errno.ECONNREFUSED:
            return TransportFailure(CONNECT, f"connection refused by {where}")
        if isinstance(link, OSError) and link.errno in _UNREACHABLE:
            return TransportFailure(CONNECT, f"{where} is unreachable: {link.strerror}")
        if isinstance(link, ConnectionResetError | BrokenPipeError | ConnectionAbortedError) or (
            isinstance(link, OSError) and link.errno in _RESET
        ):
            if connecting:
                return TransportFailure(CONNECT, f"connection reset by {where} before the request")
            return TransportFailure(DISCONNECTED, f"connection reset by {where}")
    if connecting:
        return TransportFailure(CONNECT, f"cannot connect to {where}: {_reason(exc)}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportFailure(DISCONNECTED, f"{where} broke off its answer")
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return TransportFailure(DISCONNECTED, f"connection to {where} failed: {_reason(exc)}")
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what it wraps (aiohttp keeps the OS error aside), and what it was raised from, in that order."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        for attribute in ("certificate_error", "os_error"):
            wrapped = getattr(link, attribute, None)
            if isinstance(wrapped, BaseException):
                pending.append(wrapped)
        if link.__cause__ is not None:
            pending.append(link.__cause__)
        elif link.__context__ is not None and not link.__suppress_context__:
            pending.append(link.__context__)


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).replace("_", " ").lower()
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    """The OS's words for an OSError (`strerror`), else the exception's type: never a URL or a header."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, SMTPException) and exc.message:
        return exc.message
    return type(exc).__name__
