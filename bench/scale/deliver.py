"""The delivery figures: a separate, smaller run of the pipeline benchmark (bench/pipeline: import, plan, then
real `outreach worker` processes sending to an SMTP sink, beside plain aiosmtplib), with its own store, Redis
namespace and SMTP server, all removed when it ends. The delivery rate does not depend on how many customers
the store holds, so the run is kept small (--deliver, default 20,000: some 20 s of sending at about 1,200/s;
1 M messages would take some 14 minutes). Its wait for delivery has --timeout seconds (default --max-seconds);
a run that fails (rows still open then) is a problem of the scale benchmark, whose figures are kept."""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

from bench.pipeline.__main__ import measure
from bench.pipeline.arguments import parse_args
from bench.pipeline.figures import Figures
from bench.report import log


def run_deliver(args: argparse.Namespace, parent: Path) -> Figures:
    folder = parent / "deliver"
    folder.mkdir()
    argv = [
        *("--customers", str(args.deliver)),
        *("--processes", str(args.processes)),
        *("--threads", str(args.threads)),
        *("--batch-size", str(args.batch_size)),
        *("--raw-messages", str(args.raw_messages)),
        *("--timeout", str(args.timeout)),
        *("--postgres-url", args.postgres_url),
        *("--redis-url", args.redis_url),
    ]
    log(f"[deliver] a pipeline run of {args.deliver:,} customers (bench.pipeline {' '.join(argv[:6])}) ...")
    start = time.perf_counter()
    with ExitStack() as stack:
        figures = measure(parse_args(argv, "bench.pipeline"), folder, stack)
        log("[deliver] cleaning up ...")
    figures.finished(time.perf_counter() - start)
    return figures
