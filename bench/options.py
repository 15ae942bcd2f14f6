"""Command-line options the benchmarks share: which store, where PostgreSQL and Redis are, where the JSON goes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

STORE_KINDS = ("postgresql", "sqlite")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_store_kind(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument(flag, choices=STORE_KINDS, default="postgresql")


def add_postgres_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("OUTREACH_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a database to connect to for CREATE / DROP DATABASE",
    )


def add_redis_url(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--redis-url", default=os.environ.get("OUTREACH_BENCH_REDIS_URL", default))


def add_json_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON to this file")


def require_at_least(parser: argparse.ArgumentParser, args: argparse.Namespace, minimum: int, *names: str) -> None:
    """Exit with a usage error unless each of the options `names` (as attribute names) is at least `minimum`."""
    for name in names:
        if getattr(args, name) < minimum:
            parser.error(f"--{name.replace('_', '-')} must be at least {minimum}")
