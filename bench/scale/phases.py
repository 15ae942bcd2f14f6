"""What a measured phase gets and gives back, and where each phase lives.

Each phase is a function `run(work, progress) -> Outcome` in a module of its own, imported by name only in the
child process that runs it (bench/scale/child.py), so that a phase's memory holds only what that phase
imports: the raw COPY does not carry the engine's modules, the import does not carry the planner's.

As it goes, a phase tells its `ProgressFile` how far it got; if the phase runs past the time limit, the parent
stops the child and reads that file to say what the phase reached.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# phase name -> "module:function"
PHASES = {
    "copy": "bench.scale.raw_copy:run",
    "import": "bench.scale.engine_phases:run_import",
    "plan": "bench.scale.engine_phases:run_plan",
    "render": "bench.scale.render:run",
}


@dataclass(frozen=True)
class Work:
    """What every phase of one size works on: the customers CSV, the store, the engine's settings."""

    count: int  # customers in the CSV
    csv: str
    database_url: str
    env: dict[str, str]  # OUTREACH_* settings (bench/pipeline's engine_env)
    folder: str  # scratch folder of this size

    @property
    def csv_path(self) -> Path:
        return Path(self.csv)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Work:
        return cls(**data)


@dataclass
class Outcome:
    """What a phase did: `items` in `seconds`, the peak RSS it had reached before its clock started, and the
    counts the parent checks (rows in a table, ids enqueued ...)."""

    items: int
    seconds: float
    start_rss_kb: int
    counts: dict[str, int] = field(default_factory=dict)


def peak_rss_kb() -> int:
    """This process's peak resident set size so far, in KiB.

    On Linux, VmHWM of /proc/self/status: `ru_maxrss` of a child started by fork + exec begins at the peak of
    the process it was forked from (the kernel carries the old memory's high-water mark over the exec), so it
    would show the parent's memory, not the phase's. Elsewhere, `ru_maxrss` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak // 1024 if sys.platform == "darwin" else peak


class ProgressFile:
    """How far a phase got, written to a small JSON file as it goes, at most once every `every` seconds.

    `start()` when the phase's clock starts, then `update(items)` as often as convenient (each write replaces
    the file whole, so the parent never reads half of one). A record holds the items done, the seconds since
    `start()` when they were, the wall-clock time of `start()` (so that the parent knows how long the clock had
    run when it stopped the child), the total the phase has to handle, and the phase's peak RSS so far and at
    `start()`. A phase
    whose clock runs only part of the time (the Jinja2 render: not while it reads the CSV) gives its own
    `seconds`; the record then says that the wall clock since `start()` is not the phase's time.
    """

    def __init__(self, path: Path, total: int, every: float = 1.0) -> None:
        self.path = path
        self.total = total
        self.every = every
        self.started: float | None = None  # perf_counter() at start()
        self.started_at = 0.0  # time.time() at start()
        self.written = 0.0  # perf_counter() of the last write
        self.wall_clock = True  # the phase's time is the wall-clock time since start()
        self.start_rss_kb = 0  # peak RSS at start()

    def start(self) -> None:
        self.started, self.started_at = time.perf_counter(), time.time()
        self.start_rss_kb = peak_rss_kb()
        self._write(0, 0.0, {})

    def update(self, items: int, *, seconds: float | None = None, force: bool = False, **extra: int) -> None:
        """`items` done after `seconds` of the phase's clock (default: since `start()`); written unless the
        last write is less than `every` seconds old (`force`: written anyway). `extra`: more counts."""
        if self.started is None:
            return
        if seconds is not None:
            self.wall_clock = False
        now = time.perf_counter()
        if not force and now - self.written < self.every:
            return
        self._write(items, now - self.started if seconds is None else seconds, extra)

    def _write(self, items: int, seconds: float, extra: dict[str, int]) -> None:
        self.written = time.perf_counter()
        record = {
            "items": items,
            "seconds": seconds,
            "total": self.total,
            "started_at": self.started_at,
            "wall_clock": self.wall_clock,
            "peak_rss_kb": peak_rss_kb(),
            "start_rss_kb": self.start_rss_kb,
            "extra": extra,
        }
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(record), encoding="utf-8")
        os.replace(partial, self.path)
