"""`outreach serve`'s app under a real uvicorn on loopback, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from urllib.parse import urlsplit

import uvicorn

from outreach.core.settings import Settings
from outreach.planning.queueing import Transport
from outreach.web.app import create_app


class WebServer:
    """Serves `create_app(settings)` on the host and port of `settings.public_url` (or on `listen`, for a
    public URL that is not this machine's); auto-replies of inbound triggers go to `transport` (the test's
    in-process broker), or wait in the ledger without one."""

    def __init__(
        self, settings: Settings, transport: Transport | None = None, listen: tuple[str, int] | None = None
    ) -> None:
        url = urlsplit(settings.public_url)
        host, port = listen or (url.hostname, url.port)
        assert host and port, settings.public_url
        self.settings = settings
        self.base_url = f"http://{host}:{port}" if listen else settings.public_url.rstrip("/")
        config = uvicorn.Config(
            create_app(settings, (lambda _engine: (transport, lambda: None)) if transport else None),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="web-server", daemon=True)

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
