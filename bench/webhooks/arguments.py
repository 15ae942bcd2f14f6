"""The webhook benchmark's command line."""

from __future__ import annotations

import argparse

from bench import options


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=description)
    parser.add_argument("--rows", type=int, default=20_000, help="ledger rows, one delivered callback each")
    parser.add_argument("--inbound", type=int, default=5_000, help="inbound SMS to post (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (`outreach serve --workers`)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once")
    options.add_store_kind(parser, "--database")
    options.add_postgres_url(parser)
    options.add_json_out(parser)
    args = parser.parse_args(argv)
    options.require_at_least(parser, args, 1, "rows", "workers", "concurrency")
    options.require_at_least(parser, args, 0, "inbound")
    return args
