"""The auto-reply benchmark's table: webhook answers and POST-to-reply latencies next to the plain pushes'
limit, then the checks."""

from __future__ import annotations

from bench.auto_reply.figures import Figures, Posted
from bench.report import Latencies, cell, per_second, problem_lines


def table(f: Figures) -> str:
    s = f.settings
    lines = [
        "outreach auto-reply benchmark (campaigns/complaint-ack.yaml, WeChat)",
        f"  machine     {f.machine.describe()}; load average {' '.join(f'{x:.2f}' for x in f.machine.load_at_start)} "
        f"at start, {' '.join(f'{x:.2f}' for x in f.load_at_end)} at end",
        f"  store       {f.store}; broker {s['broker']}",
        f"  app         {s['server']}; {s['workers']}; batch size {s['batch_size']}",
        f"  load        {s['customers']:,} customers; {s['complaints']:,} complaints (+{s['redelivered']:,} "
        f"redelivered with the same MsgId) and {s['plain_pushes']:,} plain pushes, each from a different customer;",
        f"              {s['client_threads']} client threads (requests, keep-alive); WeChat API: "
        "tests/wechat_server.py in this process; warm-up first",
        "",
        f"  {'':<38}{'requests':>9}{'seconds':>9}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'CPU s: bench':>14}{'serve':>7}{'workers':>9}{'db':>6}",
    ]

    def cpu_cols(posted: Posted | None) -> str:
        if posted is None:
            return ""
        c = posted.cpu
        return f"{c.own:>14.1f}{cell(c.trees['serve'], 7)}{c.trees['workers'] or 0.0:>9.1f}{cell(c.database, 6)}"

    def row(label: str, n: int, seconds: float, lat: Latencies | None, posted: Posted | None = None) -> None:
        rate = per_second(n, seconds)
        nums = f"{lat.p50_ms:>9.1f}{lat.p95_ms:>9.1f}{lat.max_ms:>9.1f}" if lat else f"{'-':>9}" * 3
        secs = f"{seconds:>9.2f}{rate:>8.0f}" if seconds else f"{'':>17}"
        lines.append(f"  {label:<38}{n:>9,}{secs}{nums}{cpu_cols(posted)}")

    if f.plain is not None:
        row("plain pushes, webhook answer (limit)", f.plain.requests, f.plain.seconds, f.plain.webhook, f.plain)
    if f.complaints is not None:
        c = f.complaints
        row("complaints, webhook answer", c.requests, c.seconds, c.webhook, c)
        if f.redeliveries is not None:
            row("  redelivered push, webhook answer", f.redeliveries.count, 0.0, f.redeliveries)
        row("complaint POST -> reply at WeChat API", f.replies, f.replies_seconds, f.reply)
    if f.plain is not None and f.complaints is not None and f.plain.rate:
        lines.append(
            f"  complaint pushes per second / plain pushes per second: {f.complaints.rate / f.plain.rate:.1%}; "
            f"replies per second / plain pushes per second: {f.replies_per_second / f.plain.rate:.1%}"
        )
    lines.append(
        "  (requests per second: first POST to last answer, redeliveries included; replies per second: first "
        "complaint POST to last reply)"
    )
    lines.append("")
    counts = ", ".join(f"{k} repl{'y' if k == 1 else 'ies'}: {v:,}" for k, v in f.reply_counts.items())
    lines.append(f"  check: complaints by replies received: {counts} (exactly one expected, redelivered ones too)")
    lines.append(
        f"  check: webhook answers {f.complaints.answers if f.complaints else {}}"
        f"{f' / plain {f.plain.answers}' if f.plain else ''}; replies with a wrong text {f.wrong_content}; "
        f"plain pushes replied to {f.plain_replied}"
    )
    lines.append(
        f"  check: complaint-ack ledger {f.ledger} (warm-up included); inbound messages filed {f.inbound_rows:,} "
        f"of {f.expected_inbound_rows:,}"
    )
    lines.append(f"  setup (import, signatures): {f.setup_seconds:.1f} s; whole run: {f.total_seconds:.0f} s")
    lines.extend(problem_lines(f.problems))
    return "\n".join(lines)
