"""The auto-reply benchmark's figures, as its table and JSON report them."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.auto_reply.pushes import Push
from bench.cpu import Spent
from bench.http_load import Answer, span
from bench.report import Latencies, Machine, per_second


@dataclass
class Posted:
    """Pushes posted in one phase, what the webhook answered, and the CPU spent meanwhile: this process (client
    threads, the app's uvicorn thread in `--server thread`, the WeChat API), the `outreach serve` subprocess
    (`--server process`), the workers, and the PostgreSQL backends of the benchmark's database."""

    requests: int
    seconds: float  # first POST to last answer
    answers: dict[str, int]  # "200 success", or the status and body start of anything else
    webhook: Latencies | None
    cpu: Spent

    @classmethod
    def of(cls, answers: list[Answer[Push]], cpu: Spent) -> Posted:
        labels = Counter(answer_label(a) for a in answers)
        latencies = [a.seconds for a in answers if not a.post.redelivery]
        return cls(len(answers), span(answers), dict(sorted(labels.items())), Latencies.of(latencies), cpu)

    @property
    def rate(self) -> float:
        return per_second(self.requests, self.seconds)

    def cpu_seconds(self) -> dict[str, float | None]:
        """By whom: "bench" (this process), "serve", "workers", "database"; None where /proc does not show it."""
        trees = self.cpu.trees
        return {"bench": self.cpu.own, "serve": trees["serve"], "workers": trees["workers"] or 0.0,
                "database": self.cpu.database}  # fmt: skip


def answer_label(answer: Answer[Push]) -> str:
    if answer.status is None:
        return f"error {answer.text}"
    return f"{answer.status} {answer.text.strip()[:40]}"


@dataclass
class Figures:
    machine: Machine
    store: str
    settings: dict[str, Any]
    load_at_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    plain: Posted | None = None
    complaints: Posted | None = None
    redeliveries: Latencies | None = None  # webhook answer of the second push of a redelivered complaint
    reply: Latencies | None = None  # first POST of a complaint -> its reply accepted by the WeChat API
    replies_seconds: float = 0.0  # first complaint POST -> last reply arrival
    replies: int = 0
    reply_counts: dict[int, int] = field(default_factory=dict)  # replies per complaint -> complaints
    wrong_content: int = 0
    plain_replied: int = 0
    ledger: dict[str, int] = field(default_factory=dict)
    inbound_rows: int = 0
    expected_inbound_rows: int = 0
    setup_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def replies_per_second(self) -> float:
        return per_second(self.replies, self.replies_seconds)

    def finished(self, seconds: float) -> None:
        """The run is over: the whole run's time, and the load average it leaves."""
        self.load_at_end = os.getloadavg()
        self.total_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        def lat(x: Latencies | None) -> dict[str, float] | None:
            return {k: round(v, 1) for k, v in vars(x).items()} if x else None

        def posted(p: Posted | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {
                "requests": p.requests,
                "seconds": round(p.seconds, 3),
                "per_second": round(p.rate, 1),
                "answers": p.answers,
                "webhook_ms": lat(p.webhook),
                "cpu_seconds": {k: (round(v, 2) if v is not None else None) for k, v in p.cpu_seconds().items()},
            }

        return {
            "machine": {
                "cpus": self.machine.cpus,
                "python": self.machine.python,
                "store": self.store,
                "load_average_at_start": self.machine.load_at_start,
                "load_average_at_end": self.load_at_end,
            },
            "settings": self.settings,
            "plain_pushes": posted(self.plain),
            "complaints": posted(self.complaints),
            "redelivered_webhook_ms": lat(self.redeliveries),
            "post_to_reply_ms": lat(self.reply),
            "replies": self.replies,
            "replies_seconds": round(self.replies_seconds, 3),
            "replies_per_second": round(self.replies_per_second, 1),
            "replies_per_complaint": {str(k): v for k, v in sorted(self.reply_counts.items())},
            "wrong_content": self.wrong_content,
            "plain_pushes_replied": self.plain_replied,
            "ledger_complaint_ack": self.ledger,
            "inbound_rows": self.inbound_rows,
            "expected_inbound_rows": self.expected_inbound_rows,
            "setup_seconds": round(self.setup_seconds, 1),
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }
