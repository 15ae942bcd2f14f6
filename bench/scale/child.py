"""One measured phase in a fresh Python process, so that its peak memory is its own.

The parent calls `run_phase`, which starts `python -m bench.scale.child SPEC` and reads back what the child
wrote: the items it handled, the seconds its work took, its peak RSS (VmHWM, see `phases.peak_rss_kb`) and the
peak it had already reached before the clock started (interpreter, imports, connections), plus the counts the
parent checks.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Phase, log
from bench.scale.phases import PHASES, Outcome, Work, peak_rss_kb


@dataclass
class Measured:
    """A phase as its own process measured it."""

    phase: Phase
    peak_rss_mb: float
    start_rss_mb: float  # peak RSS before the clock started
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.phase.as_dict(),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "start_rss_mb": round(self.start_rss_mb, 1),
            "counts": self.counts,
        }


def run_phase(name: str, work: Work) -> Measured:
    """Run phase `name` (a key of PHASES) on `work` in a child process; raise if the child fails."""
    folder = Path(work.folder)
    spec = folder / f"{name}.spec.json"
    result = folder / f"{name}.result.json"
    spec.write_text(json.dumps({"phase": name, "work": work.as_dict(), "result": str(result)}), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bench.scale.child", str(spec)], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {name} phase for {work.count:,} customers failed (exit status {done.returncode})")
    out = json.loads(result.read_text(encoding="utf-8"))
    return Measured(
        phase=Phase(int(out["items"]), float(out["seconds"])),
        peak_rss_mb=int(out["peak_rss_kb"]) / 1024,
        start_rss_mb=int(out["start_rss_kb"]) / 1024,
        counts={k: int(v) for k, v in out["counts"].items()},
    )


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    module_name, function_name = PHASES[spec["phase"]].split(":")
    run = getattr(importlib.import_module(module_name), function_name)
    outcome: Outcome = run(Work.from_dict(spec["work"]))
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
