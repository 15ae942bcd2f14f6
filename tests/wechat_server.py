"""A loopback HTTP server that answers a WeChat Official Account's token and customer-service message APIs.

As WeChat does: `GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..` gives `{"access_token",
"expires_in"}`, `POST /cgi-bin/message/custom/send?access_token=..` takes `{"touser": openid, "msgtype":
"text", "text": {"content": ..}}`, errors are `{"errcode", "errmsg"}` with HTTP 200 (errmsg ending in a request
id), a new token leaves the older ones valid for five minutes, and `\\uXXXX` escapes in a body are not decoded
(ASCII-escaped JSON delivers the escapes as text). The test decides the answers:

    with WeChatServer() as server:
        server.reject(openid, 45015)             # every send to this openid: outside the 48-hour window
        server.fail_next(2, -1)                  # the next two sends: system busy
        server.fail_next(1, -1, TOKEN_PATH)      # the next token request: system busy
        server.fail_next_http(1, 502)            # the next request (either endpoint): a bare 502
        server.expire_tokens()                   # every token issued so far: 42001 from now on
        server.delay = 2.0                       # sends answer after two seconds (the message still goes out)
        server.gather(8)                         # sends are answered once eight are waiting together
        server.expires_in = 1                    # tokens issued from now on last one second
        server.tokens_issued(), server.sent_to(openid), server.recorded()

A client that hangs up while its answer is held back (`delay`, `token_delay`) gets none, and its request is
marked `abandoned`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback_http import Answer, LoopbackHandler, LoopbackServer

TOKEN_PATH = "/cgi-bin/token"
SEND_PATH = "/cgi-bin/message/custom/send"
# How long an old token stays valid after a new one was issued (WeChat: five minutes).
OVERLAP_SECONDS = 300.0

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
}
# Openids are 28 characters of URL-safe base64 for one Official Account.
_OPENID = re.compile(r"^[A-Za-z0-9_-]{28}$")
# A `\u` escape that is not itself escaped (preceded by an even number of backslashes).
_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u")
# Content types as WeChat's front end labels them.
_JSON = "application/json; encoding=utf-8"
_HTML = "text/html; encoding=utf-8"


def new_openid() -> str:
    """An openid as WeChat issues them (`o` and 27 URL-safe characters)."""
    return "o" + secrets.token_urlsafe(21)[:27]


@dataclass
class RecordedRequest:
    """One request as the server saw it, and the errcode (0 = ok) or HTTP status it answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 200
    errcode: int | None = None
    # The client hung up while its answer was held back (`delay`, `token_delay`): it got no answer.
    abandoned: bool = False


@dataclass
class Behaviour:
    """What the server answers; change it through the server's methods (guarded by its lock)."""

    rejections: dict[str, int] = field(default_factory=dict)
    # Endpoint path -> [count, errcode]: its next `count` requests answer `errcode`; "http" -> [count, status].
    failures: dict[str, list[int]] = field(default_factory=dict)


class WeChatServer(LoopbackServer[RecordedRequest]):
    """The fake WeChat API on 127.0.0.1; `start()`/`stop()` or use it as a context manager."""

    def __init__(self, app_id: str | None = None, app_secret: str | None = None, port: int = 0) -> None:
        super().__init__(_make_handler(self), "wechat-server", port)
        self.app_id = app_id or "wx" + secrets.token_hex(8)
        self.app_secret = app_secret or secrets.token_hex(16)
        self.behaviour = Behaviour()
        # Seconds before answering a send (after taking the message) or a token request; a new token's life.
        self.delay = 0.0
        self.token_delay = 0.0
        self.expires_in = 7200
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.issued: list[str] = []

    # --- configuring answers ---------------------------------------------------------------------------------

    def reject(self, openid: str, errcode: int) -> None:
        """Answer every send to `openid` with `errcode` (45015, 43004, 40003, ...)."""
        with self.lock:
            self.behaviour.rejections[openid] = _known(errcode)

    def fail_next(self, count: int, errcode: int, endpoint: str = SEND_PATH) -> None:
        """Answer the next `count` sends (or token requests: `endpoint=TOKEN_PATH`) with `errcode`."""
        with self.lock:
            self.behaviour.failures[endpoint] = [count, _known(errcode)]

    def fail_next_http(self, count: int, status: int = 502) -> None:
        """Answer the next `count` requests to either endpoint with a bare HTTP `status` (a gateway error)."""
        with self.lock:
            self.behaviour.failures["http"] = [count, status]

    def expire_tokens(self) -> None:
        """Every token issued so far is expired: sends with it get 42001."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    # --- reading what arrived --------------------------------------------------------------------------------

    def tokens_issued(self) -> list[str]:
        with self.lock:
            return list(self.issued)

    def sent_to(self, openid: str) -> list[dict[str, Any]]:
        """The accepted message bodies addressed to `openid` (content as WeChat would show it)."""
        with self.lock:
            return [m for m in self.messages if m["touser"] == openid]

    def recorded(self, path: str | None = None) -> list[RecordedRequest]:
        """Every request, or those to `path` (TOKEN_PATH, SEND_PATH)."""
        return [r for r in super().recorded() if path is None or r.path == path]

    # --- answering (called from handler threads) -------------------------------------------------------------

    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return _error(40002)
        if not query.get("appid") or not query.get("secret"):
            return _error(41004 if query.get("appid") else 41002)
        if query["appid"] != self.app_id:
            return _error(40013)
        if query["secret"] != self.app_secret:
            return _error(40125)
        with self.lock:
            if (failure := self._failure(TOKEN_PATH)) is not None:
                return _error(failure)
            token, now = secrets.token_urlsafe(120), time.monotonic()
            self.tokens = {t: min(expiry, now + OVERLAP_SECONDS) for t, expiry in self.tokens.items()}
            self.tokens[token] = now + self.expires_in
            self.issued.append(token)
            return {"access_token": token, "expires_in": self.expires_in}

    def _send(self, query: dict[str, str], raw: bytes) -> tuple[Any, dict[str, Any]]:
        token = query.get("access_token")
        if not token:
            return None, _error(41001)
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None:
            return None, _error(40001)
        if expiry <= time.monotonic():
            return None, _error(42001)
        try:
            # WeChat does not decode \uXXXX escapes: they arrive as the text "\uXXXX".
            body = json.loads(_UNICODE_ESCAPE.sub(r"\1\\\\u", raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, _error(47001)
        if not isinstance(body, dict):
            return body, _error(47001)
        with self.lock:
            if (failure := self._failure(SEND_PATH)) is not None:
                return body, _error(failure)
            rejection = self.behaviour.rejections.get(str(body.get("touser")))
        if not isinstance(body.get("touser"), str) or not _OPENID.match(body["touser"]):
            return body, _error(40003)
        if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
            return body, _error(40008)
        if not body["text"].get("content"):
            return body, _error(44004)
        if rejection is not None:
            return body, _error(rejection)
        with self.lock:
            self.messages.append({"touser": body["touser"], "msgtype": "text", "content": body["text"]["content"]})
        return body, {"errcode": 0, "errmsg": "ok"}

    def _failure(self, endpoint: str) -> int | None:
        """The errcode configured for this request to `endpoint`, if any (called holding the lock)."""
        count, errcode = self.behaviour.failures.get(endpoint, [0, 0])
        if count <= 0:
            return None
        self.behaviour.failures[endpoint] = [count - 1, errcode]
        return errcode


def _known(errcode: int) -> int:
    if errcode not in ERRMSG:
        raise ValueError(f"unknown WeChat errcode {errcode}")
    return errcode


def _error(errcode: int) -> dict[str, Any]:
    rid = uuid.uuid4().hex
    return {"errcode": errcode, "errmsg": f"{ERRMSG[errcode]} rid: {rid[:8]}-{rid[8:16]}-{rid[16:24]}"}


def _make_handler(server: WeChatServer) -> type[LoopbackHandler]:
    class Handler(LoopbackHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            raw = self.read_body()
            request = RecordedRequest(self.command, parts.path, query, None)
            with server.lock:
                server.requests.append(request)
                gateway_error = server._failure("http")
            if gateway_error is not None:
                request.status = gateway_error
                return self.reply(gateway_error, b"<html><body>Bad Gateway</body></html>", _HTML)
            if (self.command, parts.path) == ("GET", TOKEN_PATH):
                payload, delay = server._token(query), server.token_delay
            elif (self.command, parts.path) == ("POST", SEND_PATH):
                request.body, payload = server._send(query, raw)
                delay = server.delay
            else:
                request.status = 404
                return self.reply(404, b"<html><body>404 Not Found</body></html>", _HTML)
            request.errcode = int(payload.get("errcode", 0))
            # Only sends take part in a gathering: a token request is answered without waiting for others.
            answer = server.wait_to_answer(delay, self.connection, gathered=parts.path == SEND_PATH)
            if answer is not Answer.SEND:
                with server.lock:
                    request.abandoned = answer is Answer.HUNG_UP
                self.close_connection = True
                return  # the client gave up, or the server is shutting down: no answer
            self.reply(200, json.dumps(payload, ensure_ascii=False).encode("utf-8"), _JSON)

        do_GET = do_POST = _handle

    return Handler
