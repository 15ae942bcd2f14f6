"""CPU seconds spent during a phase, read from /proc: by this process, by process trees (a server, the
workers) and by the PostgreSQL backends of the benchmark's database."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

CpuByPid = dict[int, float]


@dataclass(frozen=True)
class Reading:
    own: float
    trees: dict[str, CpuByPid | None]
    backends: CpuByPid | None


@dataclass(frozen=True)
class Spent:
    """CPU seconds between two readings; None where /proc does not show the processes."""

    own: float
    trees: dict[str, float | None]
    database: float | None


class CpuMeter:
    """Reads the CPU time of this process, of each named process tree (None: not there) and of the backends of
    the PostgreSQL database `database` (None: not PostgreSQL)."""

    def __init__(self, trees: Mapping[str, int | None], database: str | None) -> None:
        self.trees, self.database = dict(trees), database

    def read(self) -> Reading:
        # This process's own time is read last here and first in `since`: the meter's reading of /proc is not
        # counted as the benchmark's.
        trees, backends = self._others()
        return Reading(time.process_time(), trees, backends)

    def since(self, before: Reading) -> Spent:
        own = time.process_time()
        trees, backends = self._others()
        spent = {name: _delta(before.trees[name], trees[name]) for name in self.trees}
        return Spent(own - before.own, spent, _delta(before.backends, backends))

    def _others(self) -> tuple[dict[str, CpuByPid | None], CpuByPid | None]:
        trees = {name: tree_cpu(pid) if pid is not None else None for name, pid in self.trees.items()}
        return trees, backend_cpu(self.database)


def tree_cpu(root: int) -> CpuByPid:
    """CPU seconds of `root` and all its descendants, by pid."""
    info = {pid: cpu for pid in _all_pids() if (cpu := _proc_cpu(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    out: CpuByPid = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid][1]
            todo.extend(children.get(pid, []))
    return out


def backend_cpu(database: str | None) -> CpuByPid | None:
    """CPU seconds of the PostgreSQL backends connected to `database`, by pid (None if none are visible)."""
    if database is None:
        return None
    out: CpuByPid = {}
    for pid in _all_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title and (cpu := _proc_cpu(pid)):
            out[pid] = cpu[1]
    return out or None


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _delta(before: CpuByPid | None, after: CpuByPid | None) -> float | None:
    if after is None:
        return None
    before = before or {}
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
