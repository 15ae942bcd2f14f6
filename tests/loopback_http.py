"""The plumbing shared by the loopback HTTP servers that answer as a provider's API does (Twilio, WeChat).

A server subclasses `LoopbackServer` (start/stop, context manager, lock, recorded requests and accepted
messages) and answers through a handler that subclasses `LoopbackHandler` (nginx's headers, a silent log,
reading the body, answering a client that may have given up).

What a test needs to see how a client waits, without a clock: `wait_to_answer` counts the requests waiting
for their answer (`in_flight`, and the most there ever were at once, `max_in_flight`), can hold answers until
a number of requests are waiting together (`gather`), and tells when the client hung up before its answer
came (a client that timed out).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Mapping
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

RequestT = TypeVar("RequestT")
# How often a held answer looks whether its client is still there.
_POLL_SECONDS = 0.02


class Answer(Enum):
    """What became of a held answer (`LoopbackServer.wait_to_answer`)."""

    SEND = "send"  # the wait is over: answer
    HUNG_UP = "hung up"  # the client closed the connection first (it gave up waiting)
    STOPPING = "stopping"  # the server is shutting down


def client_hung_up(connection: socket.socket) -> bool:
    """The client closed its end: the socket reads as end-of-file (or is reset)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class LoopbackServer(Generic[RequestT]):
    """An HTTP server on 127.0.0.1 in a daemon thread; `start()`/`stop()` or use it as a context manager.

    `requests` holds what arrived (one `RequestT` each) and `messages` what the fake API accepted; both are
    guarded by `lock`, which the handler threads share with the test.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], thread_name: str, port: int = 0) -> None:
        self.requests: list[RequestT] = []
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # Requests taken and not yet answered, now and at most (guarded by `lock`).
        self.in_flight = 0
        self.max_in_flight = 0
        self._gathering: threading.Barrier | None = None
        self._thread_name = thread_name
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self._thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wake delayed answers
        with self.lock:
            gathering = self._gathering
        if gathering is not None:
            gathering.abort()  # and answers held for a gathering
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.messages)

    def recorded(self) -> list[RequestT]:
        with self.lock:
            return list(self.requests)

    def gather(self, parties: int, timeout: float = 10.0) -> None:
        """Hold every answer (of requests that take part, see `wait_to_answer`) until `parties` requests are
        waiting together, then answer them all; again for the next `parties`. A client that never has that
        many requests out at once has each answered after `timeout` seconds of waiting in vain (and from then
        on at once): its `max_in_flight` stays below `parties`."""
        with self.lock:
            self._gathering = threading.Barrier(parties, timeout=timeout)

    def wait_to_answer(
        self, seconds: float, connection: socket.socket | None = None, *, gathered: bool = True
    ) -> Answer:
        """Hold an answer as a slow API does: for the gathering (if `gathered` and one is set, see `gather`),
        then up to `seconds`. Counted in `in_flight` while held. With the request's `connection`, the wait
        ends early when the client hangs up (a client that timed out): `Answer.HUNG_UP`, and no answer is due.
        """
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            gathering = self._gathering if gathered else None
        try:
            if gathering is not None:
                with contextlib.suppress(threading.BrokenBarrierError):  # gathered in vain, or stopping
                    gathering.wait()
            return self._hold(seconds, connection)
        finally:
            with self.lock:
                self.in_flight -= 1  # before the answer goes out, so that a client never sees more

    def _hold(self, seconds: float, connection: socket.socket | None) -> Answer:
        if seconds <= 0:
            return Answer.SEND
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.wait(min(remaining, _POLL_SECONDS)):
                return Answer.STOPPING
            if connection is not None and client_hung_up(connection):
                return Answer.HUNG_UP
        return Answer.SEND


class LoopbackHandler(BaseHTTPRequestHandler):
    """A request handler that looks like the API's front end (nginx, HTTP/1.1) and logs nothing."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        """Send `data` with Content-Type, Content-Length and then `headers`."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): the API's answer is lost the same way

    def log_message(self, format: str, *args: Any) -> None:
        pass
