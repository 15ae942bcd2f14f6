"""A real SMTP server (aiosmtpd) in a process of its own, so it does not share the benchmark's GIL.

It accepts every message, keeps none of them, and counts messages, bytes and repeated Message-IDs in
shared memory that the benchmark reads at any time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import signal
from dataclasses import dataclass
from types import TracebackType
from typing import Any

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
# Slots of the shared counters.
_MESSAGES, _BYTES, _DUPLICATES, _PORT = range(4)


@dataclass(frozen=True)
class SinkCount:
    messages: int
    bytes: int
    duplicates: int

    def __sub__(self, other: SinkCount) -> SinkCount:
        return SinkCount(self.messages - other.messages, self.bytes - other.bytes, self.duplicates - other.duplicates)


class _CountingHandler:
    def __init__(self, counters: Any) -> None:
        self.counters = counters
        self.seen: set[bytes] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        headers = content.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(headers)
        if match:
            key = match.group(1)
            if key in self.seen:
                self.counters[_DUPLICATES] += 1
            self.seen.add(key)
        self.counters[_BYTES] += len(content)
        self.counters[_MESSAGES] += 1
        return "250 2.0.0 OK"


async def _serve(counters: Any, ready: Any) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = _CountingHandler(counters)
    server = await loop.create_server(
        # A fixed hostname: the default looks the machine's FQDN up on every connection.
        lambda: SMTP(handler, hostname="sink.bench.example", ident="bench sink", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=0,
    )
    counters[_PORT] = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    ready.set()
    await stop.wait()
    server.close()


def _main(counters: Any, ready: Any) -> None:
    asyncio.run(_serve(counters, ready))


class SmtpSink:
    """`with SmtpSink() as sink:` runs the server; `sink.url`, `sink.count()`."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._counters: Any = ctx.Array("q", 4, lock=False)  # written by the sink only
        self._ready = ctx.Event()
        self._process = ctx.Process(target=_main, args=(self._counters, self._ready), name="smtp-sink", daemon=True)

    @property
    def port(self) -> int:
        return int(self._counters[_PORT])

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def count(self) -> SinkCount:
        c = self._counters
        return SinkCount(int(c[_MESSAGES]), int(c[_BYTES]), int(c[_DUPLICATES]))

    def __enter__(self) -> SmtpSink:
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise RuntimeError("the SMTP sink did not start within 30 s")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._process.terminate()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
