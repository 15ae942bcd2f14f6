"""The webhook benchmark's table: each phase's rate and CPU next to the raw app's, then the checks."""

from __future__ import annotations

from bench.report import cell, heading, problem_lines
from bench.webhooks.figures import Figures, Shot, ratio


def table(figures: Figures) -> str:
    f = figures
    lines = [
        *heading("outreach webhook benchmark", f.machine, f.database),
        f"  server      {f.workers} uvicorn worker(s); client: aiohttp, {f.concurrency} concurrent requests, "
        "keep-alive, one process",
        "",
        f"  {'phase':<34}{'requests':>10}{'seconds':>9}{'per second':>12}"
        f"{'CPU s: client':>15}{'server':>8}{'db':>7}{'server µs/req':>15}",
    ]

    def row(label: str, shot: Shot | None) -> None:
        if shot is None:
            return
        items, server = shot.phase.items, shot.server_seconds
        per = server / items * 1e6 if items else 0.0
        lines.append(
            f"  {label:<34}{items:>10,}{shot.phase.seconds:>9.1f}{shot.phase.rate:>12,.0f}"
            f"{shot.cpu.own:>15.1f}{server:>8.1f}{cell(shot.cpu.database, 7)}{per:>15,.0f}"
        )

    row("status callbacks (outreach serve)", f.callbacks)
    row("  raw: form + signature, no db", f.raw_callbacks)
    if (r := ratio(f.callbacks, f.raw_callbacks)) is not None:
        lines.append(f"  {'  callbacks / raw':<34}{'':>19}{r:>12.1%}")
    row("inbound SMS (outreach serve)", f.replies)
    row("  raw: form + signature, no db", f.raw_replies)
    if (r := ratio(f.replies, f.raw_replies)) is not None:
        lines.append(f"  {'  inbound / raw':<34}{'':>19}{r:>12.1%}")
    lines.append("")
    if f.callbacks is not None:
        lines.append(
            f"  check: answers {f.callbacks.answers} (bodies not 'applied': {f.callbacks.wrong_bodies}), "
            f"ledger delivered {f.delivered_rows:,} of {f.rows:,}, delivery.delivered events {f.delivered_events:,}"
        )
    if f.replies is not None:
        lines.append(
            f"  check: answers {f.replies.answers} (not TwiML: {f.replies.wrong_bodies}), filed as "
            f"survey {f.kinds.get('survey', 0):,} / opt-out {f.kinds.get('opt_out', 0):,} / "
            f"reply {f.kinds.get('reply', 0):,} (expected {f.expected_kinds})"
        )
    lines.append(
        f"  setup (rows inserted, signatures computed): {f.setup_seconds:.0f} s; whole run: {f.total_seconds:.0f} s"
    )
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)
