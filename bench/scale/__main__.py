"""Scale benchmark: import and plan at N customers with peak memory, beside their raw limits, and their growth.

    .venv/bin/python -m bench.scale [--customers 200000] [--sizes 20000,200000] [--max-seconds 600]
                                    [--deliver 20000 | --skip-deliver] [--json-out PATH]

For each size (default N/10 and N) it writes N customers to a CSV, then runs in a fresh process each, in an
empty PostgreSQL database of the size's own: a plain psycopg `COPY` of that CSV into a table of the same width
(the raw limit), `import_customers` of it, and the bench campaign planned for real (ledger rows written, ids
enqueued to Redis); at N, also plain Jinja2 rendering the campaign's templates for the same customers. Each
phase reports its rate and its peak RSS, and has --max-seconds: a phase still running then is stopped, what
it reached is shown (a PROBLEM: exit status 1) and the size's later phases are skipped. Import and plan are
held to their targets: a fraction of the COPY rate, a peak RSS, a growth exponent from the smallest size to
the largest. The delivery figures come from a separate, smaller run of bench/pipeline (--deliver customers).
Everything created is removed at the end. See bench/README.md. 1 M customers: --customers 1000000.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.report import Machine, log
from bench.runner import run_benchmark
from bench.scale.arguments import parse_args
from bench.scale.deliver import run_deliver
from bench.scale.figures import Figures, check_size
from bench.scale.size_run import run_size
from bench.scale.table import table


def measure(args: argparse.Namespace, folder: Path, stack: ExitStack) -> Figures:
    figures = Figures(machine=Machine.now(), customers=args.customers)
    for count in args.sizes:
        run = run_size(args, count, folder, render=count == args.customers)
        figures.sizes.append(run)
        figures.problems.extend(check_size(run))
    if not args.skip_deliver:
        figures.deliver_customers = args.deliver
        try:
            figures.deliver = run_deliver(args, folder)
        except RuntimeError as exc:  # e.g. rows still open after --timeout: the figures above still count
            log(f"[deliver] failed: {exc}")
            figures.problems.append(f"delivery run: {str(exc).strip()}")
        else:
            figures.problems.extend(f"delivery run: {p}" for p in figures.deliver.problems)
    log("done")
    return figures


if __name__ == "__main__":
    sys.exit(run_benchmark(sys.argv[1:], __doc__, parse_args, measure, table))
