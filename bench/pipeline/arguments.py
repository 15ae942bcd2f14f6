"""The pipeline benchmark's command line."""

from __future__ import annotations

import argparse
import os

from bench import options
from outreach.core.settings import Settings


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=description)
    parser.add_argument("--customers", type=int, default=100_000, help="customers to import and email")
    options.add_store_kind(parser, "--database")
    parser.add_argument("--processes", type=int, default=2, help="`outreach worker --processes`")
    parser.add_argument("--threads", type=int, default=4, help="`outreach worker --threads`")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(os.environ.get("OUTREACH_BATCH_SIZE", Settings.batch_size)),
        help="ledger ids per broker message (default: OUTREACH_BATCH_SIZE or %(default)s)",
    )
    parser.add_argument("--raw-messages", type=int, default=20_000, help="messages of the raw phase (at most N)")
    options.add_postgres_url(parser)
    options.add_redis_url(parser, "redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for delivery")
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    options.require_at_least(parser, args, 1, "customers", "processes", "threads", "batch_size", "raw_messages")
    return args
