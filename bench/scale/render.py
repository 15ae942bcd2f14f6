"""The raw limit of rendering: plain Jinja2 (`jinja2.Environment`, templates compiled once) renders the bench
campaign's subject, text and HTML for every customer of the CSV, in this one process and thread.

The customers are read from the CSV a block at a time outside the clock (each row a dict of its columns, the
list column `products` split as the importer splits it); only the three renders per customer are timed. The
HTML is autoescaped, as a mail's HTML must be; subject and text are not.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import jinja2
from ruamel.yaml import YAML

from bench.data import campaign_yaml
from bench.scale.phases import Outcome, ProgressFile, Work, peak_rss_kb

BLOCK = 10_000  # customers read, then rendered, at a time
LIST_COLUMNS = ("products",)


def templates() -> tuple[jinja2.Template, jinja2.Template, jinja2.Template]:
    """The bench campaign's subject, text and HTML templates, compiled."""
    email = YAML(typ="safe").load(campaign_yaml())["steps"][0]["content"]["email"]
    plain = jinja2.Environment(autoescape=False)
    html = jinja2.Environment(autoescape=True)
    return plain.from_string(email["subject"]), plain.from_string(email["text"]), html.from_string(email["html"])


def contexts(work: Work) -> Iterator[list[dict[str, Any]]]:
    with work.csv_path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle)
        while block := list(islice(rows, BLOCK)):
            yield [{**row, **{name: row[name].split(";") for name in LIST_COLUMNS}} for row in block]


def run(work: Work, progress: ProgressFile) -> Outcome:
    subject, text, html = templates()
    start_rss = peak_rss_kb()
    progress.start()
    seconds = 0.0
    rendered = characters = 0
    for block in contexts(work):
        start = time.perf_counter()
        for customer in block:
            characters += len(subject.render(customer)) + len(text.render(customer)) + len(html.render(customer))
        seconds += time.perf_counter() - start
        rendered += len(block)
        progress.update(rendered, seconds=seconds)
    return Outcome(rendered, seconds, start_rss, {"rendered": rendered, "characters": characters})
