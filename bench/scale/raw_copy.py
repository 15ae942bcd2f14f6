"""The raw limit of writing the customers: a plain psycopg 3 `COPY ... FROM STDIN` of the very same CSV file
into a table of the same width (one text column per CSV column, no key, no index), committed."""

from __future__ import annotations

import csv
import time

import psycopg
from psycopg import sql

from bench.scale.phases import Outcome, ProgressFile, Work, peak_rss_kb

TABLE = "bench_raw_customers"
BLOCK = 1 << 20  # bytes of the file handed to COPY at a time


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq takes it (no `+driver`)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


def run(work: Work, progress: ProgressFile) -> Outcome:
    with work.csv_path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(name)) for name in header)
    with psycopg.connect(libpq_url(work.database_url)) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(TABLE), columns))
        conn.commit()
        copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(sql.Identifier(TABLE))
        start_rss = peak_rss_kb()
        start = time.perf_counter()
        progress.start()
        lines = 0  # of the file handed to COPY so far (no field of the CSV holds a line break)
        with work.csv_path.open("rb") as data, conn.cursor() as cur, cur.copy(copy) as writer:
            while block := data.read(BLOCK):
                writer.write(block)
                lines += block.count(b"\n")
                progress.update(max(lines - 1, 0))
        conn.commit()
        seconds = time.perf_counter() - start
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))
        conn.commit()
    copied = int(rows[0]) if rows else 0
    return Outcome(copied, seconds, start_rss, {"rows_in_table": copied, "columns": len(header)})
