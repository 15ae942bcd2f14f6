"""The scale benchmark's figures, as its table and JSON report them, the targets they are held to, and the
counts that must hold."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.pipeline.figures import Figures as PipelineFigures
from bench.report import Machine
from bench.scale.child import Measured
from bench.scale.size_run import LABELS, SizeRun, stop_line

# The targets (issue 13, issue 26): import and plan each at least this fraction of the raw COPY rate,
# with at most this peak RSS, and near-linear: time growing with N to at most this power.
TARGET_OF_COPY = 0.075
TARGET_PEAK_RSS_MB = 300.0
TARGET_GROWTH_EXPONENT = 1.15

# How a figure relates to the true one: "" it is the figure; "<=" / ">=" the true figure is at most / at least
# this (a phase was stopped at the time limit, see Measured.full_seconds).
Bound = Literal["", "<=", ">="]
ENGINE_PHASES = ("import", "plan")


def ratio(measured: Measured | None, limit: Measured | None) -> float | None:
    if measured is None or limit is None or limit.phase.rate == 0:
        return None
    return measured.phase.rate / limit.phase.rate


@dataclass(frozen=True)
class Target:
    """One figure held to its target: `at least` or `at most` `target`. `meets` is None when a stopped phase
    (or a skipped one: `value` None) leaves it open."""

    phase: str  # "import" or "plan"
    what: str  # "of_raw_copy", "peak_rss_mb", "growth_exponent"
    target: float
    at_least: bool  # the figure must be at least the target (else at most)
    value: float | None
    bound: Bound
    where: str  # the size(s) it comes from

    @property
    def meets(self) -> bool | None:
        v, t = self.value, self.target
        if v is None:
            return None
        good = v >= t if self.at_least else v <= t
        if self.bound == "":
            return good
        # the true figure lies beyond v in the bound's direction: only one verdict can be sure
        towards_good = (self.bound == ">=") == self.at_least
        if towards_good:
            return True if good else None
        return False if not good else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "at_least": self.at_least,
            "value": round(self.value, 4) if self.value is not None else None,
            "bound": (self.bound or "=") if self.value is not None else None,
            "meets": self.meets,
            "where": self.where,
        }


def exponent(small: SizeRun, large: SizeRun, phase: str) -> Target:
    """log(t_large / t_small) / log(n_large / n_small) of `phase`: 1 is linear. With a size's phase stopped,
    its time is a lower bound, so the exponent is one too (the largest stopped) or an upper bound (the
    smallest), or not known (both)."""
    a, b = small.measured().get(phase), large.measured().get(phase)
    where = f"{small.customers:,} -> {large.customers:,}"
    ta = a.full_seconds if a else None
    tb = b.full_seconds if b else None
    unknown = Target(phase, "growth_exponent", TARGET_GROWTH_EXPONENT, False, None, "", where)
    if a is None or b is None or ta is None or tb is None or ta <= 0 or tb <= 0:
        return unknown
    if a.stopped and b.stopped:
        return unknown
    value = math.log(tb / ta) / math.log(large.customers / small.customers)
    bound: Bound = ">=" if b.stopped else "<=" if a.stopped else ""
    return Target(phase, "growth_exponent", TARGET_GROWTH_EXPONENT, False, value, bound, where)


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

    def exponents(self) -> dict[str, Target]:
        """Each engine phase's growth exponent from the smallest size to the largest (none with one size)."""
        if len(self.sizes) < 2:
            return {}
        return {phase: exponent(self.sizes[0], self.sizes[-1], phase) for phase in ENGINE_PHASES}

    def targets(self) -> list[Target]:
        """The import's and the plan's rate as a fraction of the raw COPY's at N (a stopped phase: its rate so
        far, which is at least its rate over all the rows if the rate does not rise as it goes); their largest
        peak RSS over the sizes (a stopped phase: the peak it had reached, a lower bound); their growth
        exponents."""
        found: list[Target] = []
        m = self.main
        for phase in ENGINE_PHASES:
            measured = m.measured().get(phase) if m else None
            r = ratio(measured, m.copy) if m and measured and measured.phase.items else None
            bound: Bound = "<=" if measured and measured.stopped else ""
            where = f"{self.customers:,}"
            found.append(Target(phase, "of_raw_copy", TARGET_OF_COPY, True, r, bound, where))
        for phase in ENGINE_PHASES:
            ran = [
                (run, x)
                for run in self.sizes
                if (x := run.measured().get(phase)) is not None and (x.stopped is None or x.stopped.started)
            ]
            if not ran:
                found.append(Target(phase, "peak_rss_mb", TARGET_PEAK_RSS_MB, False, None, "", ""))
                continue
            run, peak = max(ran, key=lambda pair: pair[1].peak_rss_mb)
            bound = ">=" if any(x.stopped for _, x in ran) else ""
            where = f"{run.customers:,}"
            found.append(Target(phase, "peak_rss_mb", TARGET_PEAK_RSS_MB, False, peak.peak_rss_mb, bound, where))
        found.extend(self.exponents().values())
        return found

    def finished(self, seconds: float) -> None:
        self.total_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine.as_dict(self.database),
            "customers": self.customers,
            "target_of_raw_copy": TARGET_OF_COPY,
            "target_peak_rss_mb": TARGET_PEAK_RSS_MB,
            "target_growth_exponent": TARGET_GROWTH_EXPONENT,
            "ratios": {k: round(v, 4) if v is not None else None for k, v in self.ratios().items()},
            "growth_exponents": {phase: t.as_dict() for phase, t in self.exponents().items()},
            "targets": {f"{t.phase}_{t.what}": t.as_dict() for t in self.targets()},
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
