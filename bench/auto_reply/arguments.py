"""The auto-reply benchmark's command line."""

from __future__ import annotations

import argparse

from bench import options
from bench.auto_reply.pushes import customers_needed


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.auto_reply", description=description)
    parser.add_argument("--customers", type=int, default=2000, help="customers imported, with WeChat openids")
    parser.add_argument("--complaints", type=int, default=500, help="complaints posted, each from its own customer")
    parser.add_argument("--plain", type=int, help="pushes that match no trigger (default: as many as complaints)")
    parser.add_argument("--clients", type=int, default=8, help="client threads posting the pushes")
    parser.add_argument("--processes", type=int, default=1, help="`outreach worker --processes`")
    parser.add_argument("--threads", type=int, default=8, help="`outreach worker --threads`")
    options.add_store_kind(parser, "--store")
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="thread",
        help="the app under uvicorn in a thread of this process, or `outreach serve` as a subprocess",
    )
    options.add_postgres_url(parser)
    options.add_redis_url(parser, "redis://127.0.0.1:6379/14")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the replies")
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    if args.plain is None:
        args.plain = args.complaints
    options.require_at_least(parser, args, 1, "complaints", "clients", "processes", "threads")
    options.require_at_least(parser, args, 0, "plain")
    needed = customers_needed(args.plain, args.complaints)
    if args.customers < needed:
        parser.error(f"--customers must be at least {needed:,} (warm-up, plain pushes and complaints each need one)")
    return args
