"""The webhook benchmark's figures, as its table and JSON report them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import Spent
from bench.http_load import Answer, Post, span
from bench.report import Machine, Phase


@dataclass
class Shot:
    """One batch of requests fired at a server, and the CPU spent meanwhile by the client (this process), the
    server processes ("server") and the PostgreSQL backends of the benchmark's database."""

    phase: Phase  # the 200 answers, first post to last answer
    answers: dict[str, int]  # HTTP status -> count; "error" for a request that got no answer
    wrong_bodies: int  # 200 answers whose body is not what the route must answer
    cpu: Spent

    @classmethod
    def of(cls, answers: list[Answer[Post]], cpu: Spent, expect: str) -> Shot:
        """`expect` is what a 200 answer's body must be (the exact text) or contain ("<Response" for TwiML)."""
        statuses = Counter(str(a.status) if a.status is not None else "error" for a in answers)
        exact = not expect.startswith("<")
        wrong = sum(1 for a in answers if a.status == 200 and (a.text != expect if exact else expect not in a.text))
        return cls(Phase(statuses.get("200", 0), span(answers)), dict(sorted(statuses.items())), wrong, cpu)

    @property
    def server_seconds(self) -> float:
        return self.cpu.trees["server"] or 0.0

    def as_dict(self) -> dict[str, Any]:
        items, database = self.phase.items, self.cpu.database

        def per(seconds: float | None) -> float | None:
            return round(seconds / items * 1e6) if seconds is not None and items else None

        return {
            **self.phase.as_dict(),
            "answers": self.answers,
            "wrong_bodies": self.wrong_bodies,
            "client_seconds": round(self.cpu.own, 2),
            "server_seconds": round(self.server_seconds, 2),
            "database_seconds": round(database, 2) if database is not None else None,
            "server_us_per_request": per(self.server_seconds),
            "database_us_per_request": per(database),
        }


@dataclass
class Figures:
    machine: Machine
    database: str
    rows: int
    inbound: int
    workers: int
    concurrency: int
    callbacks: Shot | None = None
    raw_callbacks: Shot | None = None
    replies: Shot | None = None
    raw_replies: Shot | None = None
    delivered_rows: int = 0
    delivered_events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    expected_kinds: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def finished(self, seconds: float) -> None:
        self.total_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        def shot(s: Shot | None) -> dict[str, Any] | None:
            return s.as_dict() if s else None

        return {
            "machine": self.machine.as_dict(self.database),
            "rows": self.rows,
            "inbound": self.inbound,
            "workers": self.workers,
            "concurrency": self.concurrency,
            "status_callbacks": shot(self.callbacks),
            "raw_status_callbacks": shot(self.raw_callbacks),
            "callbacks_fraction_of_raw": ratio(self.callbacks, self.raw_callbacks),
            "inbound_replies": shot(self.replies),
            "raw_inbound": shot(self.raw_replies),
            "inbound_fraction_of_raw": ratio(self.replies, self.raw_replies),
            "ledger_delivered_rows": self.delivered_rows,
            "delivered_events": self.delivered_events,
            "inbound_kinds": self.kinds,
            "expected_inbound_kinds": self.expected_kinds,
            "setup_seconds": round(self.setup_seconds, 1),
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }


def ratio(real: Shot | None, raw: Shot | None) -> float | None:
    """The real server's rate as a fraction of the raw app's."""
    if real is None or raw is None or raw.phase.rate == 0:
        return None
    return round(real.phase.rate / raw.phase.rate, 4)
