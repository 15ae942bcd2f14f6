"""The scale benchmark's table: the headline size's phases beside their raw limits, the growth from the
smallest size to the largest, the delivery run, then the checks."""

from __future__ import annotations

from bench.pipeline.figures import Figures as PipelineFigures
from bench.report import Phase, heading, problem_lines
from bench.scale.child import Measured
from bench.scale.figures import TARGET_OF_COPY, Figures, ratio
from bench.scale.size_run import SizeRun

PER = 100_000  # the growth table's time per this many customers
HEADER = f"  {'phase':<42}{'rows':>11}{'seconds':>9}{'per second':>12}{'peak RSS':>10}{'at start':>10}{'/ COPY':>9}"


def _mb(value: float) -> str:
    return f"{value:,.0f} MB"


def _phase_row(label: str, m: Measured, copy: Measured | None = None) -> str:
    r = ratio(m, copy) if copy is not None else None
    verdict = "" if r is None else f"{r:>8.3f}x  {'meets' if r >= TARGET_OF_COPY else 'below'} {TARGET_OF_COPY}x"
    return (
        f"  {label:<42}{m.phase.items:>11,}{m.phase.seconds:>9.1f}{m.phase.rate:>12,.0f}"
        f"{_mb(m.peak_rss_mb):>10}{_mb(m.start_rss_mb):>10} {verdict}"
    )


def _headline(run: SizeRun) -> list[str]:
    lines = [
        f"  customers   {run.customers:,}   CSV of {run.csv_bytes / 1e6:,.1f} MB written by bench/data.py in "
        f"{run.write.seconds:.1f} s   each phase in a fresh process (peak RSS: its VmHWM)",
        "",
        HEADER,
        _phase_row("raw: psycopg COPY of the same CSV", run.copy),
        _phase_row("import_customers", run.import_, run.copy),
        _phase_row("plan campaign (rows written + enqueued)", run.plan, run.copy),
    ]
    if run.render is not None:
        lines.append(_phase_row("raw: Jinja2 subject+text+html (1 process)", run.render))
        r = ratio(run.plan, run.render)
        if r is not None:
            lines.append(f"  {'plan rate / Jinja2 render rate':<42}{'':>11}{'':>9}{r:>11.2f}x")
    return lines


def _growth(runs: list[SizeRun]) -> list[str]:
    def per(m: Measured, n: int) -> float:
        return m.phase.seconds * PER / n

    lines = [
        "",
        "  growth (each size in an empty database; seconds and seconds per 100k rows; peak RSS)",
        f"  {'customers':>11}{'import s':>10}{'/100k':>8}{'RSS':>9}{'plan s':>10}{'/100k':>8}{'RSS':>9}"
        f"{'COPY s':>9}{'/100k':>8}",
    ]
    for run in runs:
        n = run.customers
        lines.append(
            f"  {n:>11,}{run.import_.phase.seconds:>10.1f}{per(run.import_, n):>8.2f}{_mb(run.import_.peak_rss_mb):>9}"
            f"{run.plan.phase.seconds:>10.1f}{per(run.plan, n):>8.2f}{_mb(run.plan.peak_rss_mb):>9}"
            f"{run.copy.phase.seconds:>9.2f}{per(run.copy, n):>8.3f}"
        )
    if len(runs) > 1:
        small, large = runs[0], runs[-1]

        def grow(a: Measured, b: Measured) -> str:
            time_per_row = per(b, large.customers) / per(a, small.customers)
            return f"{time_per_row:.2f}x time per row, {b.peak_rss_mb / a.peak_rss_mb:.2f}x peak RSS"

        lines.append(
            f"  {large.customers:,} vs {small.customers:,}: import {grow(small.import_, large.import_)}; "
            f"plan {grow(small.plan, large.plan)} (linear in time and flat in memory: 1.00x and 1.00x)"
        )
    return lines


def _delivery(customers: int | None, d: PipelineFigures | None) -> list[str]:
    if customers is None:
        return ["", "  delivery: skipped (--skip-deliver)"]
    lines = [
        "",
        f"  delivery: a separate bench.pipeline run of {customers:,} customers "
        f"({d.processes if d else '?'} worker processes x {d.threads if d else '?'} threads), not the run above",
    ]
    if d is None:
        return lines

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
