"""The scale benchmark's table: the headline size's phases beside their raw limits, the growth from the
smallest size to the largest, the targets of import and plan, the delivery run, then the checks."""

from __future__ import annotations

from bench.pipeline.figures import Figures as PipelineFigures
from bench.report import Phase, heading, problem_lines
from bench.scale.child import Measured
from bench.scale.figures import (
    TARGET_GROWTH_EXPONENT,
    TARGET_OF_COPY,
    TARGET_PEAK_RSS_MB,
    Bound,
    Figures,
    Target,
    ratio,
)
from bench.scale.size_run import LABELS, SizeRun

PER = 100_000  # the growth table's time per this many customers
HEADER = f"  {'phase':<42}{'rows':>11}{'seconds':>9}{'per second':>12}{'peak RSS':>10}{'at start':>10}{'/ COPY':>9}"
MARK = {"": "", "<=": "≤", ">=": "≥"}


def _mb(value: float) -> str:
    return f"{value:,.0f} MB"


def _phase_row(label: str, m: Measured | None, copy: Measured | None = None, skipped: str = "") -> str:
    if m is None:
        return f"  {label:<42}{'skipped':>11}   ({skipped} was stopped)"
    if m.stopped and not m.stopped.started:
        return f"  {label:<42}{'-':>11}{'-':>9}{'-':>12}{_mb(m.peak_rss_mb):>10}{'-':>10}   stopped while starting up"
    r = ratio(m, copy) if copy is not None and m.phase.items else None
    row = (
        f"  {label:<42}{m.phase.items:>11,}{m.phase.seconds:>9.1f}{m.phase.rate:>12,.0f}"
        f"{_mb(m.peak_rss_mb):>10}{_mb(m.start_rss_mb):>10}{'' if r is None else f'{r:>8.3f}x'}"
    )
    if m.stopped:
        row += f"   so far (stopped at the {m.stopped.limit_seconds:g} s limit; of {m.stopped.total:,})"
    return row.rstrip()


def _headline(run: SizeRun) -> list[str]:
    stopped = run.stopped
    first_stopped = LABELS[stopped[0]] if stopped else ""
    lines = [
        f"  customers   {run.customers:,}   CSV of {run.csv_bytes / 1e6:,.1f} MB written by bench/data.py in "
        f"{run.write.seconds:.1f} s   each phase in a fresh process (peak RSS: its VmHWM)",
        "",
        HEADER,
        _phase_row("raw: psycopg COPY of the same CSV", run.copy),
        _phase_row("import_customers", run.import_, run.copy, first_stopped),
        _phase_row("plan campaign (rows written + enqueued)", run.plan, run.copy, first_stopped),
    ]
    if run.render is not None:
        lines.append(_phase_row("raw: Jinja2 subject+text+html (1 process)", run.render))
        r = ratio(run.plan, run.render) if run.render.phase.items else None
        if r is not None:
            note = "   (Jinja2 render stopped: its rate so far)" if run.render.stopped else ""
            lines.append(f"  {'plan rate / Jinja2 render rate':<42}{'':>11}{'':>9}{r:>11.2f}x{note}")
    elif "render" in run.skipped:
        lines.append(_phase_row("raw: Jinja2 subject+text+html (1 process)", None, skipped=first_stopped))
    return lines


def _verdict(t: Target) -> str:
    if t.value is None:
        return "not known"
    if t.meets is None:
        return "open (stopped)"
    if t.meets:
        return "meets"
    return "below" if t.at_least else "over"


def _target_cell(t: Target | None) -> str:
    if t is None or t.value is None:
        return f"{'-':>10}  {'not known':<16}"
    if t.what == "of_raw_copy":
        value = f"{t.value:.3f}x"
    elif t.what == "peak_rss_mb":
        value = _mb(t.value)
    else:
        value = f"{t.value:.2f}"
    return f"{MARK[t.bound] + value:>10}  {_verdict(t):<16}"


def _targets(f: Figures) -> list[str]:
    found = {(t.phase, t.what): t for t in f.targets()}
    exponents = f.exponents()
    rows = [
        ("of_raw_copy", f"rate / raw COPY at {f.customers:,}: at least {TARGET_OF_COPY}x"),
        ("peak_rss_mb", f"peak RSS (the largest of the sizes): at most {TARGET_PEAK_RSS_MB:.0f} MB"),
    ]
    if exponents:
        where = next(iter(exponents.values())).where
        rows.append(("growth_exponent", f"growth exponent {where}: at most {TARGET_GROWTH_EXPONENT}"))
    # the phases' names end where their values do
    lines = ["", f"  {'targets':<48}{'import_customers':>16}{'':<18}{'plan':>10}"]
    for what, label in rows:
        cells = _target_cell(found.get(("import", what))) + _target_cell(found.get(("plan", what)))
        lines.append(f"  {label:<54}{cells}".rstrip())
    if exponents:
        lines.append(
            "  exponent: log(t_large / t_small) / log(n_large / n_small), 1.00 linear; ≥ / ≤: a bound, a phase "
            "was stopped"
        )
    return lines


def _seconds_cell(m: Measured | None, width: int, per: int | None = None, digits: int = 1) -> str:
    """A growth table cell: the phase's seconds (per `per` rows if given; a stopped phase: its lower bound)."""
    seconds = m.full_seconds if m is not None else None
    if m is None or seconds is None:
        return f"{'-':>{width}}"
    if per is not None:
        seconds = seconds * PER / per
    return f"{('≥' if m.stopped else '') + f'{seconds:.{digits}f}':>{width}}"


def _rss_cell(m: Measured | None, width: int) -> str:
    if m is None or (m.stopped and not m.stopped.started):
        return f"{'-':>{width}}"
    return f"{('≥' if m.stopped else '') + _mb(m.peak_rss_mb):>{width}}"


def _growth(runs: list[SizeRun]) -> list[str]:
    lines = [
        "",
        "  growth (each size in an empty database; seconds and seconds per 100k rows; peak RSS)",
        f"  {'customers':>11}{'import s':>10}{'/100k':>8}{'RSS':>9}{'plan s':>10}{'/100k':>8}{'RSS':>9}"
        f"{'COPY s':>9}{'/100k':>8}",
    ]
    for run in runs:
        n = run.customers
        lines.append(
            f"  {n:>11,}{_seconds_cell(run.import_, 10)}{_seconds_cell(run.import_, 8, n, 2)}"
            f"{_rss_cell(run.import_, 9)}{_seconds_cell(run.plan, 10)}{_seconds_cell(run.plan, 8, n, 2)}"
            f"{_rss_cell(run.plan, 9)}{_seconds_cell(run.copy, 9, None, 2)}{_seconds_cell(run.copy, 8, n, 3)}"
        )
    if any(m.stopped and m.stopped.started for run in runs for m in run.measured().values()):
        lines.append("  ≥: stopped at the time limit: the time every row would take at the rate it reached (at least")
        lines.append("     the time it ran; a lower bound unless its rate would have risen), the peak RSS it reached")
    if len(runs) > 1:
        small, large = runs[0], runs[-1]

        def grow(name: str) -> str:
            a, b = small.measured().get(name), large.measured().get(name)
            ta, tb = (a.full_seconds if a else None), (b.full_seconds if b else None)
            if a is None or b is None or ta is None or tb is None or (a.stopped and b.stopped):
                return "not known"
            bound: Bound = ">=" if b.stopped else "<=" if a.stopped else ""
            time_per_row = (tb / large.customers) / (ta / small.customers)
            return (
                f"{MARK[bound]}{time_per_row:.2f}x time per row, "
                f"{MARK[bound]}{b.peak_rss_mb / a.peak_rss_mb:.2f}x peak RSS"
            )

        lines.append(
            f"  {large.customers:,} vs {small.customers:,}: import {grow('import')}; plan {grow('plan')} "
            "(linear in time and flat in memory: 1.00x and 1.00x)"
        )
    return lines


def _delivery(customers: int | None, d: PipelineFigures | None) -> list[str]:
    if customers is None:
        return ["", "  delivery: skipped (--skip-deliver)"]
    if d is None:
        return [
            "",
            f"  delivery: the separate bench.pipeline run of {customers:,} customers failed (see PROBLEM below)",
        ]
    lines = [
        "",
        f"  delivery: a separate bench.pipeline run of {customers:,} customers "
        f"({d.processes} worker processes x {d.threads} threads), not the run above",
    ]

    def row(label: str, phase: Phase) -> None:
        lines.append(f"  {label:<42}{phase.items:>11,}{phase.seconds:>9.1f}{phase.rate:>12,.0f}")

    if d.delivery is not None:
        row("deliver (workers launch -> ledger done)", d.delivery.phase)
        row("  of which first -> last send", d.delivery.steady)
        lines.append(f"  {'  first send after launch':<42}{'':>11}{d.delivery.first_send_after:>9.1f}")
    if d.raw is not None:
        row(f"raw: aiosmtplib ({d.raw.connections} connections)", d.raw.send)
        row("render_email (1 process, 1 thread)", d.raw.build)
    if d.fraction_of_raw is not None:
        lines.append(f"  {'delivery rate / raw rate':<42}{'':>11}{'':>9}{d.fraction_of_raw:>11.2f}x")
    return lines


def table(figures: Figures) -> str:
    f = figures
    lines = heading("outreach scale benchmark (import and plan at N customers)", f.machine, f.database)
    if f.main is not None:
        lines.extend(_headline(f.main))
    lines.extend(_growth(f.sizes))
    lines.extend(_targets(f))
    lines.extend(_delivery(f.deliver_customers, f.deliver))
    lines.append("")
    checked = ", ".join(f"{run.customers:,}" for run in f.sizes)
    verdict = "all hold" if not f.problems else "see PROBLEM below"
    lines.append(
        f"  checks at {checked} customers: each phase handled every customer once (rows COPYed, customers "
        f"stored, ledger rows queued, ids enqueued, renders){'; every planned message sent once' if f.deliver else ''}"
        f": {verdict}"
    )
    lines.append(f"  whole run: {f.total_seconds:.0f} s")
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)
