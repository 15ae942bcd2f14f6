"""The plumbing shared by the loopback HTTP servers that answer as a provider's API does (Twilio, WeChat).

A server subclasses `LoopbackServer` (start/stop, context manager, lock, recorded requests and accepted
messages) and answers through a handler that subclasses `LoopbackHandler` (nginx's headers, a silent log,
reading the body, answering a client that may have given up).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

RequestT = TypeVar("RequestT")


class LoopbackServer(Generic[RequestT]):
    """An HTTP server on 127.0.0.1 in a daemon thread; `start()`/`stop()` or use it as a context manager.

    `requests` holds what arrived (one `RequestT` each) and `messages` what the fake API accepted; both are
    guarded by `lock`, which the handler threads share with the test.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], thread_name: str, port: int = 0) -> None:
        self.requests: list[RequestT] = []
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
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

    def answer_after(self, seconds: float) -> bool:
        """Wait `seconds` before an answer, as a slow API does; False when the server stops meanwhile."""
        return seconds <= 0 or not self._stopping.wait(seconds)


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
