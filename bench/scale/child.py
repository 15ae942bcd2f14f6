"""One measured phase in a fresh Python process, so that its peak memory is its own.

The parent calls `run_phase`, which starts `python -m bench.scale.child SPEC` and reads back what the child
wrote: the items it handled, the seconds its work took, its peak RSS (VmHWM, see `phases.peak_rss_kb`) and the
peak it had already reached before the clock started (interpreter, imports, connections), plus the counts the
parent checks.

Each child has `limit` seconds (`--max-seconds`). One that is still running then is stopped (SIGTERM, then
SIGKILL if it has not gone after a few seconds); what it reached comes from its progress file
(`phases.ProgressFile`), its peak RSS from /proc just before the stop.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Phase, log
from bench.scale.phases import PHASES, Outcome, ProgressFile, Work, peak_rss_kb

# Seconds a stopped child gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE = 10.0


@dataclass
class Stopped:
    """A phase stopped at the time limit: what it had to do and how long its clock had run."""

    limit_seconds: float
    total: int  # items the phase had to handle
    ran_seconds: float  # the phase's clock when it was stopped
    started: bool = True  # False: stopped before its clock started (the process was still starting up)
    extra: dict[str, int] = field(default_factory=dict)  # the last progress record's other counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit_seconds": self.limit_seconds,
            "total": self.total,
            "clock_started": self.started,
            "ran_seconds": round(self.ran_seconds, 3),
            **self.extra,
        }


@dataclass
class Measured:
    """A phase as its own process measured it."""

    phase: Phase  # stopped: the items of its last progress record and when they were done (the rate so far)
    peak_rss_mb: float  # stopped: the peak it had reached
    start_rss_mb: float  # peak RSS before the clock started
    counts: dict[str, int] = field(default_factory=dict)  # stopped: none
    stopped: Stopped | None = None

    @property
    def full_seconds(self) -> float | None:
        """The time of the phase for all its items: measured; if it was stopped, a lower bound (marked as such
        wherever it is shown): the time for every item at the rate it had reached, and at least the time its
        clock ran. It is a lower bound as long as the rate would not have risen later (a phase slowing down as
        the store grows takes longer still). None when it was stopped before its clock started."""
        s = self.stopped
        if s is None:
            return self.phase.seconds
        estimate = s.total / self.phase.rate if self.phase.rate > 0 else 0.0
        lower = max(estimate, s.ran_seconds)
        return lower if lower > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.phase.as_dict(),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "start_rss_mb": round(self.start_rss_mb, 1),
            "counts": self.counts,
            "stopped": self.stopped.as_dict() if self.stopped else None,
        }


def run_phase(name: str, work: Work, limit: float) -> Measured:
    """Run phase `name` (a key of PHASES) on `work` in a child process with `limit` seconds to finish; raise if
    the child fails. A child still running after `limit` seconds is stopped (`Measured.stopped`)."""
    folder = Path(work.folder)
    spec = folder / f"{name}.spec.json"
    result = folder / f"{name}.result.json"
    progress = folder / f"{name}.progress.json"
    progress.unlink(missing_ok=True)
    spec.write_text(
        json.dumps({"phase": name, "work": work.as_dict(), "result": str(result), "progress": str(progress)}),
        encoding="utf-8",
    )
    child = subprocess.Popen([sys.executable, "-m", "bench.scale.child", str(spec)])
    try:
        try:
            code = child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            return _stop(child, work, limit, progress)
    finally:
        _end(child)  # already gone, unless the benchmark itself is interrupted (Ctrl-C)
    if code != 0:
        raise RuntimeError(f"the {name} phase for {work.count:,} customers failed (exit status {code})")
    out = json.loads(result.read_text(encoding="utf-8"))
    return Measured(
        phase=Phase(int(out["items"]), float(out["seconds"])),
        peak_rss_mb=int(out["peak_rss_kb"]) / 1024,
        start_rss_mb=int(out["start_rss_kb"]) / 1024,
        counts={k: int(v) for k, v in out["counts"].items()},
    )


def _end(child: subprocess.Popen[bytes]) -> None:
    """Stop `child` if it is still running: SIGTERM, then SIGKILL after TERMINATE_GRACE seconds."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _vm_hwm_kb(pid: int) -> int | None:
    """The peak RSS of process `pid` (VmHWM), None if /proc does not show it."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _stop(child: subprocess.Popen[bytes], work: Work, limit: float, progress: Path) -> Measured:
    """Stop `child` at the time limit; what it reached, from its last progress record."""
    stopped_at = time.time()
    peak_kb = _vm_hwm_kb(child.pid)
    _end(child)
    try:
        record: dict[str, Any] = json.loads(progress.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}  # stopped before its clock started
    if not record:
        ran = 0.0
    elif record["wall_clock"]:
        ran = max(stopped_at - float(record["started_at"]), float(record["seconds"]))
    else:
        ran = float(record["seconds"])
    return Measured(
        phase=Phase(int(record.get("items", 0)), float(record.get("seconds", 0.0))),
        peak_rss_mb=(peak_kb if peak_kb is not None else int(record.get("peak_rss_kb", 0))) / 1024,
        start_rss_mb=int(record.get("start_rss_kb", 0)) / 1024,
        stopped=Stopped(
            limit,
            int(record.get("total", work.count)),
            ran,
            started=bool(record),
            extra={k: int(v) for k, v in record.get("extra", {}).items()},
        ),
    )


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    module_name, function_name = PHASES[spec["phase"]].split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    work = Work.from_dict(spec["work"])
    outcome: Outcome = run(work, ProgressFile(Path(spec["progress"]), work.count))
    out = {
        "items": outcome.items,
        "seconds": outcome.seconds,
        "peak_rss_kb": peak_rss_kb(),
        "start_rss_kb": outcome.start_rss_kb,
        "counts": outcome.counts,
    }
    Path(spec["result"]).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        log("usage: python -m bench.scale.child SPEC.json (run by bench.scale)")
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
