"""The raw limit: plain aiosmtplib pushing ready-made messages as fast as it can, nothing else.

`processes` processes each keep `connections` SMTP sessions open (one asyncio task each) and send their
share of the messages back to back. The messages are built before the clock starts, so the figure is what
the SMTP client and server on this machine can carry, with no database, broker or rendering in the way.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

from bench.report import per_second

RawMail = tuple[str, str, bytes]  # sender, recipient, the message as sent on the wire


@dataclass(frozen=True)
class RawResult:
    messages: int
    connections: int
    seconds: float

    @property
    def rate(self) -> float:
        return per_second(self.messages, self.seconds)


async def _session(host: str, port: int, mails: list[RawMail]) -> int:
    from aiosmtplib import SMTP

    client = SMTP(hostname=host, port=port, start_tls=False, timeout=60)
    await client.connect()
    try:
        for sender, recipient, data in mails:
            await client.sendmail(sender, [recipient], data)
        await client.quit()
    finally:
        client.close()
    return len(mails)


async def _sessions(host: str, port: int, shares: list[list[RawMail]]) -> int:
    return sum(await asyncio.gather(*(_session(host, port, share) for share in shares)))


def _child(host: str, port: int, shares: list[list[RawMail]], start_line: Any, results: Any) -> None:
    import aiosmtplib  # noqa: F401  (imported before the clock starts)

    start_line.wait()  # every sender is ready: all start together
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable between processes on one machine
    try:
        sent = asyncio.run(_sessions(host, port, shares))
    except Exception as exc:  # reported to the parent, which fails the run
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ok", (start, time.monotonic(), sent)))


def measure_raw(host: str, port: int, mails: list[RawMail], processes: int, connections: int) -> RawResult:
    """Send `mails` over `processes` x `connections` concurrent sessions; time from the start to the last reply."""
    ctx = multiprocessing.get_context("spawn")
    start_line = ctx.Barrier(processes)
    results = ctx.Queue()
    total = processes * connections
    shares = [mails[i::total] for i in range(total)]
    children = [
        ctx.Process(
            target=_child,
            args=(host, port, shares[p * connections : (p + 1) * connections], start_line, results),
            name=f"raw-smtp-{p}",
        )
        for p in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=3600) for _ in children]
    for child in children:
        child.join()
    errors = [str(detail) for kind, detail in outcomes if kind == "error"]
    if errors:
        raise RuntimeError("raw SMTP sender failed: " + "; ".join(errors))
    spans = [detail for _, detail in outcomes]
    start = min(s[0] for s in spans)
    end = max(s[1] for s in spans)
    return RawResult(sum(s[2] for s in spans), total, end - start)
