"""Scale benchmark: import and plan at 1 M customers with peak memory, each beside its raw limit.

    .venv/bin/python -m bench.scale [--customers 1000000] [--sizes 100000,1000000]
                                    [--deliver 100000 | --skip-deliver] [--json-out PATH]

For each size (default N/10 and N) it writes N customers to a CSV, then runs in a fresh process each, in an
empty PostgreSQL database of the size's own: a plain psycopg `COPY` of that CSV into a table of the same width
(the raw limit), `import_customers` of it, and the bench campaign planned for real (ledger rows written, ids
enqueued to Redis); at N, also plain Jinja2 rendering the campaign's templates for the same customers. Each
phase reports its rate and its peak RSS. The delivery figures come from a separate, smaller run of
bench/pipeline (--deliver customers). Everything created is removed at the end. See bench/README.md.
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
        figures.deliver = run_deliver(args, folder)
        figures.problems.extend(f"delivery run: {p}" for p in figures.deliver.problems)
    log("done")
    return figures


if __name__ == "__main__":
    sys.exit(run_benchmark(sys.argv[1:], __doc__, parse_args, measure, table))
