"""Text messages through a WeChat Official Account's customer-service API (`/cgi-bin/message/custom/send`).

`message.to` is the customer's openid for this Official Account, `message.body` the text. WeChat answers
HTTP 200 with `{"errcode", "errmsg"}`; the errcodes are mapped to send results here and nowhere else:

* 0 -> sent. WeChat gives no message id: `provider_id` is None.
* 45015 (the customer's last interaction is more than 48 hours old) -> permanent, error_code "45015", error
  "window_closed: ..." (WindowClosed: the result's `window_closed` flag tells a caller so).
* 40003 invalid openid -> permanent, `address_invalid`; 43004 the customer no longer follows the account ->
  permanent, `recipient_opted_out` (their WeChat consent is gone, as after an unsubscribe event).
* 40001 / 40014 / 41001 / 42001 (access token invalid, not the latest, missing, expired) -> a new token is
  fetched and the send retried once with it; failing the same way again -> transient.
* -1 / 45009 / 45011 / 45047 (system busy, quotas, rate limits), HTTP 429 / 5xx, unreadable answers,
  timeouts and connection errors -> transient. A timeout after the request went out may have delivered it.
* the token endpoint refusing the app id or secret (40013, 40125, 40001, 40164 IP not whitelisted, ...) ->
  permanent for the whole batch, error text "configuration: ..."; the secret and tokens are always masked.
* any other errcode or HTTP status -> permanent.

The access token is cached per process (across batches, event loops and threads: `TokenCache`) and fetched
again shortly before its `expires_in` runs out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

import aiohttp

from outreach.channels.base import NO_HOOKS, OutgoingMessage, SendHooks, SendResult
from outreach.channels.transport_errors import TIMEOUT, classify, http_status_code
from outreach.core.errors import (
    AddressInvalid,
    ConsentRevoked,
    InputError,
    PermanentError,
    Problem,
    ProviderError,
    TransientError,
    WindowClosed,
)
from outreach.core.settings import Settings, mask_secrets

log = logging.getLogger(__name__)

TOKEN_PATH = "/cgi-bin/token"
SEND_PATH = "/cgi-bin/message/custom/send"
WINDOW_CLOSED = "window_closed"
WINDOW_CLOSED_CODE = "45015"
TOKEN_ERRCODES = frozenset({40001, 40014, 41001, 42001})
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45011, 45047})
ADDRESS_INVALID_ERRCODES = frozenset({40003})
OPTED_OUT_ERRCODES = frozenset({43004})
# A token is fetched again this long before it expires (at most a tenth of its lifetime). WeChat keeps the
# previous token valid for five minutes after a new one is issued, so sends in flight are not disturbed.
REFRESH_MARGIN = 300.0
_CREDENTIAL_IN_URL = re.compile(r"((?:access_token|secret)=)[^&\s'\"]+")


def is_window_closed(result: SendResult) -> bool:
    """The platform refused because its reply window is closed (WeChat 45015): fall back or suppress."""
    return result.window_closed


class TokenKey(NamedTuple):
    api_base: str
    app_id: str
    secret_sha256: str  # a rotated (or wrong) secret never gets the token of another


class TokenCache:
    """Access tokens per account, shared by every batch of the process.

    Each batch runs in its own event loop, several at once on worker threads: the state is guarded by a
    threading lock, and a fetch in progress is a `concurrent.futures.Future` that callers on any loop await,
    so at most one request per account is at the token endpoint at a time (its quota is 2,000 a day).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, tuple[str, float]] = {}  # token, refresh due at
        self._fetching: dict[TokenKey, concurrent.futures.Future[str]] = {}

    async def get(
        self, key: TokenKey, fetch: Callable[[], Awaitable[tuple[str, float]]], stale: str | None = None
    ) -> str:
        """The cached token, unless it is due for refresh or is `stale` (WeChat just refused it)."""
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[0] != stale and self._clock() < cached[1]:
                return cached[0]
            pending = self._fetching.get(key)
            mine = pending is None
            if pending is None:
                pending = self._fetching[key] = concurrent.futures.Future()
                pending.set_running_or_notify_cancel()  # a waiter that is cancelled cannot cancel the fetch
        if not mine:
            return await asyncio.wrap_future(pending)
        try:
            token, expires_in = await fetch()
        except BaseException as exc:
            with self._lock:
                del self._fetching[key]
            if not isinstance(exc, Exception):  # cancelled: the others may try again themselves
                exc = TransientError("fetching a WeChat access token was interrupted")
            pending.set_exception(exc)
            raise
        with self._lock:
            self._tokens[key] = (token, self._clock() + expires_in - min(REFRESH_MARGIN, expires_in / 10))
            del self._fetching[key]
        pending.set_result(token)
        return token


TOKENS = TokenCache()


class WeChatProvider:
    """Sends WeChat customer-service text messages, up to `send_concurrency` requests in flight."""

    name = "wechat"

    def __init__(self, settings: Settings, tokens: TokenCache = TOKENS) -> None:
        missing = [
            Problem(env, None, None, "not set: needed to send WeChat messages")
            for env, value in (
                ("OUTREACH_WECHAT_APP_ID", settings.wechat_app_id),
                ("OUTREACH_WECHAT_APP_SECRET", settings.wechat_app_secret),
            )
            if not value
        ]
        if missing:
            raise InputError(missing)
        assert settings.wechat_app_id and settings.wechat_app_secret
        self._settings = settings
        self._app_id: str = settings.wechat_app_id
        self._secret: str = settings.wechat_app_secret
        self._api_base = settings.wechat_api_base.rstrip("/")
        self._timeout = settings.wechat_timeout
        self._concurrency = max(1, settings.send_concurrency)
        self._tokens = tokens
        self._key = TokenKey(self._api_base, self._app_id, hashlib.sha256(self._secret.encode()).hexdigest())

    async def send_many(self, messages: Sequence[OutgoingMessage], hooks: SendHooks = NO_HOOKS) -> list[SendResult]:
        if not messages:
            return []
        connector = aiohttp.TCPConnector(limit=self._concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                # At most one token fetch for the batch: bad credentials fail every message at once.
                await self._token(session)
            except ProviderError as failure:
                return _all_failed(messages, failure, hooks)
            except Exception as exc:
                log.exception("unexpected error fetching a WeChat access token")
                error = self._mask(f"unexpected error fetching an access token: {type(exc).__name__}: {exc}")
                return _all_failed(messages, TransientError(error), hooks)
            semaphore = asyncio.Semaphore(self._concurrency)

            async def send_one(message: OutgoingMessage) -> SendResult | None:
                async with semaphore:
                    if not await hooks.before(message):
                        return None
                    result = await self._send(session, message)
                    hooks.after(result)  # before the next message may take this one's place
                    return result

            return [r for r in await asyncio.gather(*(send_one(m) for m in messages)) if r is not None]

    async def _send(self, session: aiohttp.ClientSession, message: OutgoingMessage) -> SendResult:
        try:
            token = await self._token(session)
            errcode, errmsg = await self._post(session, token, message)
            if errcode in TOKEN_ERRCODES:
                token = await self._token(session, stale=token)
                errcode, errmsg = await self._post(session, token, message)
                if errcode in TOKEN_ERRCODES:
                    text = self._text(errcode, errmsg, "again with a new access token")
                    return SendResult.failed(message, TransientError(text, str(errcode)))
        except ProviderError as failure:
            return SendResult.failed(message, failure)
        except Exception as exc:  # never let one message lose the results of the whole batch
            log.exception("unexpected error sending delivery %s through WeChat", message.delivery_id)
            return SendResult.failed(
                message, TransientError(self._mask(f"unexpected error: {type(exc).__name__}: {exc}"))
            )
        return self._result(message, errcode, errmsg)

    def _result(self, message: OutgoingMessage, errcode: int, errmsg: str) -> SendResult:
        code, text = str(errcode), self._text(errcode, errmsg)
        if errcode == 0:
            return SendResult.sent(message, None)
        if code == WINDOW_CLOSED_CODE:
            text = f"{WINDOW_CLOSED}: outside the 48 hours after the customer's last interaction ({text})"
            return SendResult.failed(message, WindowClosed(text, code))
        if errcode in TRANSIENT_ERRCODES:
            return SendResult.failed(message, TransientError(text, code))
        if errcode in ADDRESS_INVALID_ERRCODES:
            return SendResult.failed(message, AddressInvalid(text, code))
        if errcode in OPTED_OUT_ERRCODES:
            return SendResult.failed(message, ConsentRevoked(text, code))
        return SendResult.failed(message, PermanentError(text, code))

    async def _post(self, session: aiohttp.ClientSession, token: str, message: OutgoingMessage) -> tuple[int, str]:
        payload = {"touser": message.to, "msgtype": "text", "text": {"content": message.body}}
        # WeChat shows \uXXXX escapes as typed: the body must be real UTF-8.
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        body = await self._call(session, "POST", SEND_PATH, {"access_token": token}, data)
        return _errcode(body)

    async def _token(self, session: aiohttp.ClientSession, stale: str | None = None) -> str:
        async def fetch() -> tuple[str, float]:
            params = {"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret}
            body = await self._call(session, "GET", TOKEN_PATH, params)
            errcode, errmsg = _errcode(body)
            if errcode in TRANSIENT_ERRCODES:
                text = self._text(errcode, errmsg, "fetching an access token")
                raise TransientError(text, str(errcode))
            if errcode != 0:
                text = "configuration: WeChat's token endpoint refused the app id or secret: "
                raise PermanentError(text + self._text(errcode, errmsg), str(errcode))
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                raise TransientError("WeChat answered the token request without a token")
            return token, float(expires_in)

        return await self._tokens.get(self._key, fetch, stale=stale)

    async def _call(
        self, session: aiohttp.ClientSession, method: str, path: str, params: Mapping[str, str], data: bytes = b""
    ) -> dict[str, Any]:
        """One request; its JSON object, or a TransientError / PermanentError for anything else (timeouts, HTTP
        errors, ...)."""
        what = "token" if path == TOKEN_PATH else "send"
        headers = {"Content-Type": "application/json; charset=utf-8"} if data else {}
        request = session.request(method, self._api_base + path, params=params, data=data or None, headers=headers)
        try:
            async with asyncio.timeout(self._timeout):
                async with request as response:
                    status, raw = response.status, await response.read()
        except TimeoutError:
            maybe = " (the message may have been sent)" if data else ""
            text = f"no answer from WeChat ({what}) within {self._timeout:g}s{maybe}"
            raise TransientError(text, TIMEOUT) from None
        except (aiohttp.ClientError, OSError) as exc:
            failure = classify(exc, f"WeChat ({what})", timeout=self._timeout)
            if failure is not None:
                raise TransientError(self._mask(failure.description), failure.code) from None
            text = self._mask(f"cannot reach WeChat ({what}): {type(exc).__name__}: {exc}")
            raise TransientError(text) from None
        if status != 200:
            kind = TransientError if status == 429 or status >= 500 else PermanentError
            raise kind(f"WeChat ({what}) answered HTTP {status}", http_status_code(status))
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one too
            body = None
        if not isinstance(body, dict):
            raise TransientError(f"WeChat ({what}) answered something that is not a JSON object")
        return body

    def _text(self, errcode: int, errmsg: str, context: str = "") -> str:
        return self._mask(f"WeChat errcode {errcode}: {errmsg}" + (f" ({context})" if context else ""))

    def _mask(self, text: str) -> str:
        return _CREDENTIAL_IN_URL.sub(r"\1***", mask_secrets(text, self._settings))


def _errcode(body: Mapping[str, Any]) -> tuple[int, str]:
    errcode = body.get("errcode", 0)
    return (errcode if isinstance(errcode, int) else -1), str(body.get("errmsg", ""))


def _all_failed(messages: Sequence[OutgoingMessage], error: ProviderError, hooks: SendHooks) -> list[SendResult]:
    """Every message of a batch failed with one error, none of them handed over."""
    results = [SendResult.failed(m, error) for m in messages]
    for result in results:
        hooks.after(result)
    return results
