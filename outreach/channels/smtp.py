"""Email over SMTP (aiosmtplib): one connection per batch, SMTP replies mapped to transient or permanent here."""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Sequence
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from aiosmtplib import (
    SMTP,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from outreach.channels.base import NO_HOOKS, OutgoingMessage, SendHooks, SendResult
from outreach.channels.email_message import InvalidAddress, ReturnPath, WireEmail, render_email
from outreach.channels.transport_errors import classify
from outreach.core.errors import AddressInvalid, InputError, PermanentError, TransientError
from outreach.core.settings import Settings, mask_secrets, mask_url

# RFC 3463 enhanced status code at the start of the reply text, e.g. `5.1.1 <x@y>: user unknown`.
_ENHANCED_STATUS = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Without an enhanced status, these RCPT replies say the mailbox does not exist (RFC 5321 §4.2.2).
_MAILBOX_UNKNOWN_CODES = {550, 551, 553}
# X.1.7 and X.1.8 are about *our* sender address, not the recipient's.
_SENDER_SUBJECTS = {"7", "8"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SmtpProvider:
    """Sends a batch of emails over one SMTP session (`smtp://[user:pass@]host:port[?starttls=true]`, or
    `smtps://` for TLS from the first byte).

    `starttls=true` requires STARTTLS, `starttls=false` never attempts it, and without the parameter the
    session is upgraded when the server offers STARTTLS.
    """

    name = "smtp"

    def __init__(
        self,
        url: str,
        email_from: str,
        timeout: float = 30.0,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        return_path: str | None = None,
    ) -> None:
        self._url = url
        parts = urlsplit(url)
        where = "smtp_url"
        if parts.scheme not in {"smtp", "smtps"}:
            raise InputError.single(where, f"{_masked(url)}: expected smtp:// or smtps://")
        if not parts.hostname:
            raise InputError.single(where, f"{_masked(url)}: no host")
        try:
            self._port = parts.port
        except ValueError:
            raise InputError.single(where, f"{_masked(url)}: invalid port") from None
        self._host = parts.hostname
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password is not None else None
        self._use_tls = parts.scheme == "smtps"
        self._start_tls = self._parse_starttls(parse_qs(parts.query), url)
        if self._use_tls and self._start_tls:
            raise InputError.single(where, f"{_masked(url)}: smtps:// is TLS already; drop starttls=true")
        self._sender = parseaddr(email_from)[1]
        if "@" not in self._sender:
            raise InputError.single("email_from", f"{email_from!r} has no email address")
        self._email_from = email_from
        # MAIL FROM: where bounces go; the From address unless `email_return_path` says otherwise (VERP too).
        self._return_path = ReturnPath(return_path) if return_path else None
        self._timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname

    def url(self, privacy: bool = True) -> str:
        """The configured URL, with the password masked unless `privacy` is False."""
        return _masked(self._url) if privacy else self._url

    def __repr__(self) -> str:
        return f"SmtpProvider({self.url()!r})"

    async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
        results: list[SendResult] = []

        def done(result: SendResult) -> None:
            results.append(result)
            hooks.after(result)

        client: SMTP | None = None
        try:
            for index, message in enumerate(messages):
                try:
                    email = render_email(message, self._email_from)
                except InvalidAddress as exc:
                    done(SendResult.failed(message, AddressInvalid(self._mask(str(exc)))))
                    continue
                except ValueError as exc:
                    done(SendResult.failed(message, PermanentError(self._mask(str(exc)))))
                    continue
                if client is None or not client.is_connected:
                    try:
                        client = await self._connect()
                    except (SMTPException, OSError) as exc:
                        # Nothing more can go out in this batch; every message left is worth retrying later.
                        failure = classify(exc, self._where(), timeout=self._timeout)
                        code: str | None
                        if failure is not None:
                            error, code = self._mask(failure.description), failure.code
                        else:
                            error = self._mask(f"cannot connect to {self._where()}: {_describe(exc)}")
                            code = str(exc.code) if isinstance(exc, SMTPResponseException) else None
                        for left in messages[index:]:
                            done(SendResult.failed(left, TransientError(error, code)))
                        break
                if await hooks.before(message):
                    done(await self._send(client, message, email))
            if client is not None and client.is_connected:
                # Every message already has its result; a failed goodbye changes none of them.
                with contextlib.suppress(SMTPException, OSError):
                    await client.quit()
        finally:
            if client is not None:
                client.close()
        return results

    async def _connect(self) -> SMTP:
        client = SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            use_tls=self._use_tls,
            start_tls=False if self._use_tls else self._start_tls,
            tls_context=self._tls_context,
            local_hostname=self._local_hostname,
        )
        await client.connect()  # and STARTTLS and AUTH, as configured
        return client

    async def _send(self, client: SMTP, message: OutgoingMessage, email: WireEmail) -> SendResult:
        recipient = email.recipient
        try:
            # aiosmtplib answers a refused MAIL, RCPT or DATA with RSET, so the session stays usable.
            sender = self._return_path.address_for(email.message_id) if self._return_path else self._sender
            refused, _ = await client.sendmail(
                sender, [recipient], email.data, mail_options=["SMTPUTF8"] if email.smtputf8 else []
            )
        except SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return self._refused(message, first.code, first.message, recipient=True)
        except SMTPResponseException as exc:  # MAIL FROM or DATA refused, or 421 at any point
            return self._refused(message, exc.code, exc.message, recipient=False)
        except SMTPNotSupported as exc:
            # The server cannot take this address (SMTPUTF8); trying it again will not change that.
            return SendResult.failed(message, PermanentError(self._mask(_describe(exc))))
        except (SMTPException, OSError) as exc:
            # Disconnects and timeouts: the session may be out of step, so drop it; the next message reconnects.
            client.close()
            failure = classify(exc, self._where(), timeout=self._timeout)
            if failure is not None:
                return SendResult.failed(message, TransientError(self._mask(failure.description), failure.code))
            return SendResult.failed(message, TransientError(self._mask(f"{self._where()}: {_describe(exc)}")))
        except ValueError as exc:  # aiosmtplib refuses an address it cannot put on a command line
            return SendResult.failed(message, AddressInvalid(self._mask(str(exc))))
        if refused:  # with one recipient a partial refusal cannot happen, but a result must never lie
            code, text = next(iter(refused.values()))
            return self._refused(message, code, text, recipient=True)
        return SendResult.sent(message, email.message_id)

    def _refused(self, message: OutgoingMessage, code: int, text: str, *, recipient: bool) -> SendResult:
        error = self._mask(f"{code} {text}")
        if 500 <= code < 600:
            unknown_mailbox = recipient and _mailbox_unknown(code, text)
            return SendResult.failed(message, (AddressInvalid if unknown_mailbox else PermanentError)(error, str(code)))
        return SendResult.failed(message, TransientError(error, str(code)))

    def _where(self) -> str:
        return f"{self._host}:{self._port}" if self._port else self._host

    def _mask(self, text: str) -> str:
        text = mask_secrets(text, Settings(smtp_url=self._url))
        if self._password:
            text = text.replace(self._password, "***")
        return text

    @staticmethod
    def _parse_starttls(query: dict[str, list[str]], url: str) -> bool | None:
        unknown = set(query) - {"starttls"}
        if unknown:
            raise InputError.single("smtp_url", f"{_masked(url)}: unknown parameter {sorted(unknown)[0]!r}")
        if "starttls" not in query:
            return None
        value = query["starttls"][-1].strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InputError.single("smtp_url", f"{_masked(url)}: starttls must be true or false")


def _masked(url: str) -> str:
    """The URL with its password masked; mask_url itself raises on a URL whose port is not a number."""
    try:
        return mask_url(url)
    except ValueError:
        return f"{urlsplit(url).scheme}://***"


def _mailbox_unknown(code: int, text: str) -> bool:
    """A 5xx RCPT reply that says this address cannot receive mail (rather than a policy or capacity refusal)."""
    enhanced = _ENHANCED_STATUS.match(text)
    if enhanced:
        klass, subject, detail = enhanced.groups()
        return klass == "5" and subject == "1" and detail not in _SENDER_SUBJECTS
    return code in _MAILBOX_UNKNOWN_CODES


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SMTPResponseException):
        return f"{exc.code} {exc.message}"
    if isinstance(exc, SMTPException):
        return exc.message or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
