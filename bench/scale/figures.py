"""The scale benchmark's figures, as its table and JSON report them, and the counts that must hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bench.pipeline.figures import Figures as PipelineFigures
from bench.report import Machine
from bench.scale.child import Measured
from bench.scale.size_run import LABELS, SizeRun, stop_line

# The target (issue 13): import and plan each at least this fraction of the raw COPY rate.
TARGET_OF_COPY = 0.075

# How a figure relates to the true one: "" it is the figure; "<=" / ">=" the true figure is at most / at least
# this (a phase was stopped at the time limit, see Measured.full_seconds).
Bound = Literal["", "<=", ">="]


def ratio(measured: Measured | None, limit: Measured | None) -> float | None:
    if measured is None or limit is None or limit.phase.rate == 0:
        return None
    return measured.phase.rate / limit.phase.rate


@dataclass
class Figures:
    machine: Machine
    customers: int
    sizes: list[SizeRun] = field(default_factory=list)
    deliver_customers: int | None = None  # None: --skip-deliver
    deliver: PipelineFigures | None = None
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def main(self) -> SizeRun | None:
        return next((run for run in self.sizes if run.customers == self.customers), None)

    @property
    def database(self) -> str:
        return self.sizes[0].database if self.sizes else "PostgreSQL"

    def ratios(self) -> dict[str, float | None]:
        m = self.main
        if m is None:
            return {}
        return {
            "import_of_raw_copy": ratio(m.import_, m.copy),
            "plan_of_raw_copy": ratio(m.plan, m.copy),
            "plan_of_jinja2_render": ratio(m.plan, m.render),
        }

    def finished(self, seconds: float) -> None:
        self.total_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine.as_dict(self.database),
            "customers": self.customers,
            "target_of_raw_copy": TARGET_OF_COPY,
            "ratios": {k: round(v, 4) if v is not None else None for k, v in self.ratios().items()},
            "sizes": [run.as_dict() for run in self.sizes],
            "deliver": (
                {"customers": self.deliver_customers, **self.deliver.as_dict()} if self.deliver is not None else None
            ),
            "total_seconds": round(self.total_seconds, 1),
            "problems": self.problems,
        }


def check_size(run: SizeRun) -> list[str]:
    """What is wrong with one size: a phase stopped at the time limit (and those skipped after it), and the
    counts of the phases that ran to the end: each must have handled every customer exactly once."""
    n = run.customers
    problems = []
    stopped = run.stopped
    if stopped is not None:
        skipped = f"; skipped: {', '.join(LABELS[name] for name in run.skipped)}" if run.skipped else ""
        problems.append(f"{n:,} customers: {stop_line(*stopped)}{skipped}")
    expected: dict[str, dict[str, int]] = {
        "copy": {"rows_in_table": n},
        "import": {"created": n, "customers_in_store": n},
        "plan": {"planned": n, "ledger_rows": n, "ledger_queued": n, "ids_enqueued": n},
        "render": {"rendered": n},
    }
    for phase, measured in run.measured().items():
        if measured.stopped:
            continue
        got = measured.counts
        wrong = {k: got.get(k) for k, v in expected[phase].items() if got.get(k) != v}
        if wrong:
            problems.append(f"{n:,} customers, {LABELS[phase]}: expected {n:,} for {', '.join(wrong)}, got {wrong}")
    return problems
