"""Load on an HTTP server: prepared posts (signed before any clock starts) sent over keep-alive connections,
each answer recorded with its times.

Two clients, because the client is part of what a benchmark measures: `from_threads` is a pool of blocking
client threads that take the posts in order (a post placed right after another goes out nearly together
with it) and suits timing each request; `concurrently` is one asyncio loop with many posts in flight and
suits throughput. Both return the same records.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class Post:
    """A request ready to post: the path with its query, the body and the headers, signature included."""

    path: str
    body: bytes
    headers: Mapping[str, str]


P = TypeVar("P", bound=Post)


@dataclass(frozen=True)
class Answer(Generic[P]):
    post: P
    started: float  # time.perf_counter()
    answered: float
    status: int | None  # None: no answer; `text` names the client's error
    text: str

    @property
    def seconds(self) -> float:
        return self.answered - self.started


def span(answers: Sequence[Answer[P]]) -> float:
    """Seconds from the first post to the last answer."""
    return max(a.answered for a in answers) - min(a.started for a in answers) if answers else 0.0


def from_threads(base_url: str, posts: Sequence[P], threads: int, timeout: float = 60) -> list[Answer[P]]:
    """Post in order from `threads` client threads (requests, one keep-alive session each): a post is taken by
    the next free thread. The answers sorted by when they were posted."""
    import requests

    todo: queue.SimpleQueue[P] = queue.SimpleQueue()
    for post in posts:
        todo.put(post)

    def client() -> list[Answer[P]]:
        out: list[Answer[P]] = []
        with requests.Session() as session:
            while True:
                try:
                    p = todo.get_nowait()
                except queue.Empty:
                    return out
                started = time.perf_counter()
                try:
                    r = session.post(base_url + p.path, data=p.body, headers=p.headers, timeout=timeout)
                    status, text = r.status_code, r.text
                except requests.RequestException as exc:
                    status, text = None, type(exc).__name__
                out.append(Answer(p, started, time.perf_counter(), status, text))

    with ThreadPoolExecutor(threads, thread_name_prefix="bench-client") as pool:
        results = [f.result() for f in [pool.submit(client) for _ in range(threads)]]
    return sorted((a for r in results for a in r), key=lambda a: a.started)


def concurrently(base_url: str, posts: Sequence[P], concurrency: int, timeout: float = 300) -> list[Answer[P]]:
    """Post everything from one asyncio loop (aiohttp on uvloop), `concurrency` posts in flight over as many
    keep-alive connections. The answers in the order they came."""
    factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_concurrently(base_url, posts, concurrency, timeout))


async def _concurrently(base_url: str, posts: Sequence[P], concurrency: int, timeout: float) -> list[Answer[P]]:
    import aiohttp
    from yarl import URL

    work = iter([(URL(base_url + p.path, encoded=True), p) for p in posts])
    out: list[Answer[P]] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for url, p in work:
            started = time.perf_counter()
            try:
                async with session.post(url, data=p.body, headers=p.headers) as r:
                    status, text = r.status, await r.text()
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, text = None, type(exc).__name__
            out.append(Answer(p, started, time.perf_counter(), status, text))

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, auto_decompress=False) as session:
        await asyncio.gather(*(client(session) for _ in range(min(concurrency, len(posts)))))
    return out
