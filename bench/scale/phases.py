"""What a measured phase gets and gives back, and where each phase lives.

Each phase is a function `run(work) -> Outcome` in a module of its own, imported by name only in the child
process that runs it (bench/scale/child.py), so that a phase's memory holds only what that phase imports: the
raw COPY does not carry the engine's modules, the import does not carry the planner's.
"""

from __future__ import annotations

import resource
import sys
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
