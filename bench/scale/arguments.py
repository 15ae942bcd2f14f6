"""The scale benchmark's command line."""

from __future__ import annotations

import argparse
import os

from bench import options
from outreach.core.settings import Settings


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=description)
    parser.add_argument(
        "--customers",
        type=int,
        default=200_000,
        help="the size of the headline figures (default: %(default)s; 1000000 for the 1 M figures)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="sizes of the growth table, comma-separated (default: N/10,N); N is always among them",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="time limit of each phase's process: one still running then is stopped, and what it reached is "
        "shown (default: %(default)g)",
    )
    parser.add_argument(
        "--deliver",
        type=int,
        default=20_000,
        help="customers of the separate, smaller pipeline run that gives the delivery figures (default: "
        "%(default)s, small enough for this machine: the delivery rate does not depend on the store's size)",
    )
    parser.add_argument("--skip-deliver", action="store_true", help="no delivery run")
    parser.add_argument("--processes", type=int, default=2, help="`outreach worker --processes` (delivery run)")
    parser.add_argument("--threads", type=int, default=4, help="`outreach worker --threads` (delivery run)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(os.environ.get("OUTREACH_BATCH_SIZE", Settings.batch_size)),
        help="ledger ids per broker message (default: OUTREACH_BATCH_SIZE or %(default)s)",
    )
    parser.add_argument("--raw-messages", type=int, default=20_000, help="messages of the raw SMTP phase")
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for delivery (delivery run; default: --max-seconds)"
    )
    options.add_postgres_url(parser)
    options.add_redis_url(parser, "redis://127.0.0.1:6379/0")
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    options.require_at_least(
        parser, args, 1, "customers", "deliver", "processes", "threads", "batch_size", "raw_messages"
    )
    if args.max_seconds <= 0:
        parser.error("--max-seconds must be more than 0")
    if args.timeout is None:
        args.timeout = args.max_seconds
    if args.sizes is None:
        args.sizes = sorted({max(1, args.customers // 10), args.customers})
    elif args.customers not in args.sizes:
        args.sizes = sorted({*args.sizes, args.customers})
    return args
