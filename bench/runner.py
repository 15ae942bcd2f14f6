"""The frame every benchmark runs in: its command line parsed, a scratch folder and an exit stack for what the
run starts (both cleaned up when it ends), the whole run timed, then its table printed and its JSON written."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol, TypeVar

from bench.report import Figures, log, publish


class RunFigures(Figures, Protocol):
    def finished(self, seconds: float) -> None:
        """The run is over and everything it started is gone: `seconds` is how long it all took."""


F = TypeVar("F", bound=RunFigures)


def run_benchmark(
    argv: list[str] | None,
    doc: str,
    parse_args: Callable[[list[str] | None, str], argparse.Namespace],
    measure: Callable[[argparse.Namespace, Path, ExitStack], F],
    table: Callable[[F], str],
) -> int:
    """Parse `argv` (the help's description: the first line of `doc`), `measure`, print the table and write the
    JSON if asked. The exit status: 1 when a check failed."""
    args = parse_args(argv, doc.split("\n")[0])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        figures = measure(args, Path(tmp), stack)
        log("cleaning up ...")
    figures.finished(time.perf_counter() - started)
    return publish(table(figures), figures, args.json_out)
