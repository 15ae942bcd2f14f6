"""The pipeline benchmark's table: each phase's rate, the delivery next to the raw SMTP limit, then the checks."""

from __future__ import annotations

from bench.pipeline.figures import Figures
from bench.report import Phase, heading, problem_lines


def table(figures: Figures) -> str:
    f = figures
    lines = [
        *heading("outreach pipeline benchmark", f.machine, f.database),
        f"  customers   {f.customers:,}   workers {f.processes} processes x {f.threads} threads   "
        f"batch size {f.batch_size}",
        "",
        f"  {'phase':<38}{'items':>10}{'seconds':>10}{'per second':>12}",
    ]

    def row(label: str, phase: Phase | None) -> None:
        if phase is not None:
            lines.append(f"  {label:<38}{phase.items:>10,}{phase.seconds:>10.1f}{phase.rate:>12,.0f}")

    row("import customers", f.import_)
    row("plan campaign (rows written + enqueued)", f.plan)
    d = f.delivery
    if d is not None:
        row("deliver (workers launch -> ledger done)", d.phase)
        row("  of which first -> last send", d.steady)
        lines.append(f"  {'  first send after launch':<38}{'':>10}{d.first_send_after:>10.1f}")
    raw = f.raw
    if raw is not None:
        row(f"raw aiosmtplib ({raw.connections} connections)", raw.send)
        row("render_email (1 process, 1 thread)", raw.build)
    if f.fraction_of_raw is not None:
        lines.append(f"  {'delivery rate / raw rate':<38}{'':>10}{'':>10}{f.fraction_of_raw:>11.1%}")
    lines.append("")
    if d is not None:
        others = {k: v for k, v in d.statuses.items() if k != "sent"}
        lines.append(
            f"  check: ledger sent {d.statuses.get('sent', 0):,}, SMTP server received {d.smtp_received:,}, "
            f"repeated Message-IDs {d.smtp_duplicates}, other statuses {others or 'none'}"
        )
        lines.append(f"  workers stopped by SIGTERM, exit status {d.workers_exit_code}")
    if raw is not None:
        lines.append(f"  raw messages: {raw.message_bytes:,} bytes on average, repeated Message-IDs {raw.duplicates}")
    lines.append(f"  whole run: {f.total_seconds:.0f} s")
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)
