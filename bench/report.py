"""What a benchmark prints: progress on stderr, then its figures (rates, percentiles, the machine they were
measured on) as a table on stdout and, if asked, as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def per_second(items: float, seconds: float) -> float:
    return items / seconds if seconds > 0 else 0.0


@dataclass
class Phase:
    """`items` handled in `seconds`."""

    items: int
    seconds: float

    @property
    def rate(self) -> float:
        return per_second(self.items, self.seconds)

    def as_dict(self) -> dict[str, float]:
        return {"items": self.items, "seconds": round(self.seconds, 3), "per_second": round(self.rate, 1)}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Latencies:
    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies | None:
        if not seconds:
            return None
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), percentile(ms, 50), percentile(ms, 95), max(ms), statistics.fmean(ms))


@dataclass(frozen=True)
class Machine:
    """The machine the figures were measured on, and how busy it was when the run started (a previous run or
    other work shows in the load average)."""

    cpus: int
    python: str
    load_at_start: tuple[float, float, float]

    @classmethod
    def now(cls) -> Machine:
        return cls(os.cpu_count() or 0, platform.python_version(), os.getloadavg())

    def describe(self) -> str:
        return f"{self.cpus} CPUs, {platform.system()} {platform.machine()}, Python {self.python}"

    def line(self) -> str:
        """The table's machine line, with the 1-minute load average at start."""
        return f"  machine     {self.describe()}, load average {self.load_at_start[0]:.2f} at start"

    def as_dict(self, database: str) -> dict[str, Any]:
        """The JSON's machine entry, with the 1-minute load average at start and the store."""
        return {
            "cpus": self.cpus,
            "load_average_at_start": self.load_at_start[0],
            "python": self.python,
            "database": database,
        }


class Figures(Protocol):
    problems: list[str]

    def as_dict(self) -> dict[str, Any]: ...


def heading(title: str, machine: Machine, database: str) -> list[str]:
    """A table's first lines: what it shows, the machine and the database it was measured on."""
    return [title, machine.line(), f"  database    {database}"]


def cell(seconds: float | None, width: int) -> str:
    """A table cell of seconds, one decimal; "-" where there is no figure (processes /proc does not show)."""
    return f"{seconds:>{width}.1f}" if seconds is not None else f"{'-':>{width}}"


def problem_lines(problems: list[str]) -> list[str]:
    return [f"  PROBLEM: {problem}" for problem in problems]


def publish(table: str, figures: Figures, json_out: Path | None) -> int:
    """Print the table and write the JSON file if asked; the exit status, 1 when a check failed."""
    print(table)
    if json_out:
        json_out.write_text(json.dumps(figures.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if figures.problems else 0
