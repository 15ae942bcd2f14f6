"""The pipeline benchmark's figures, as its table and JSON report them, and what must hold between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.pipeline.delivery import Delivery
from bench.pipeline.raw import RawRun
from bench.report import Machine, Phase


@dataclass
class Figures:
    machine: Machine
    database: str
    customers: int
    processes: int
    threads: int
    batch_size: int
    import_: Phase | None = None
    plan: Phase | None = None
    delivery: Delivery | None = None
    raw: RawRun | None = None
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def fraction_of_raw(self) -> float | None:
        if self.delivery is None or self.raw is None or self.raw.send.rate == 0:
            return None
        return self.delivery.phase.rate / self.raw.send.rate

    def finished(self, seconds: float) -> None:
        self.total_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "machine": self.machine.as_dict(self.database),
            "customers": self.customers,
            "processes": self.processes,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "import": self.import_.as_dict() if self.import_ else None,
            "plan": self.plan.as_dict() if self.plan else None,
            "delivery": None,
            "raw": None,
            "build": self.raw.build.as_dict() if self.raw else None,
            "delivery_fraction_of_raw": round(self.fraction_of_raw, 4) if self.fraction_of_raw is not None else None,
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }
        if self.delivery is not None:
            d = self.delivery
            out["delivery"] = {
                **d.phase.as_dict(),
                "smtp_received": d.smtp_received,
                "smtp_duplicates": d.smtp_duplicates,
                "statuses": d.statuses,
                "first_send_after_seconds": round(d.first_send_after, 3),
                "first_to_last_send": d.steady.as_dict(),
                "workers_exit_code": d.workers_exit_code,
            }
        if self.raw is not None:
            out["raw"] = {
                **self.raw.send.as_dict(),
                "connections": self.raw.connections,
                "message_bytes": self.raw.message_bytes,
                "smtp_duplicates": self.raw.duplicates,
            }
        return out


def check(figures: Figures) -> None:
    """Note a problem unless the SMTP server received every raw message, every planned row was sent, the
    server received each sent message once, and no Message-ID came twice."""
    raw, d = figures.raw, figures.delivery
    if raw is not None and raw.received != raw.send.items:
        figures.problems.append(f"raw phase: the SMTP server received {raw.received:,}, sent {raw.send.items:,}")
    if d is None or figures.plan is None:
        return
    sent = d.statuses.get("sent", 0)
    if sent != figures.plan.items:
        figures.problems.append(f"{figures.plan.items:,} rows planned but {sent:,} sent: {d.statuses}")
    if d.smtp_received != sent:
        figures.problems.append(f"the SMTP server received {d.smtp_received:,} messages, the ledger says {sent:,} sent")
    if d.smtp_duplicates or (raw is not None and raw.duplicates):
        figures.problems.append("the SMTP server received some Message-ID more than once")
