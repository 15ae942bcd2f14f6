"""The customers an import has written, with their lines in the file: a temporary table of the import's
transaction, so that questions about the whole file (which of its addresses are shared) are asked once, by
joining it, instead of once per chunk."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class ImportedIds:
    """A temporary table `(id, line)` on `conn`, dropped by `drop` (and by PostgreSQL at commit)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        dialect_options: dict[str, Any] = {"postgresql_on_commit": "DROP"} if conn.dialect.name == "postgresql" else {}
        self.table = sa.Table(
            f"import_ids_{uuid.uuid4().hex[:10]}",
            sa.MetaData(),
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("line", sa.Integer, nullable=False),
            prefixes=["TEMPORARY"],
            **dialect_options,
        )
        self.table.create(conn)

    def note(self, rows: Sequence[tuple[str, int]]) -> dict[int, int]:
        """Note the customers of a chunk (id, line), in file order. Returns, for each line whose id came
        earlier in the file (in an earlier chunk or this one), the line it first came on; those are not noted
        again.

        Each id is looked up through the table's key, never by a scan of what the import noted so far (the
        planner has no statistics of a table made in this transaction, and a scan per chunk would make the
        import quadratic): the chunk's first occurrences are inserted, an id already there is skipped by its
        key, and only for those (rare) are their first lines read."""
        first_in_chunk: dict[str, int] = {}
        again: dict[int, int] = {}
        for customer_id, line in rows:
            earlier = first_in_chunk.setdefault(customer_id, line)
            if earlier != line:
                again[line] = earlier
        table = self.table
        if self._conn.dialect.name == "postgresql":
            inserted = set(
                self._conn.execute(
                    sa.text(
                        f"INSERT INTO {table.name} (id, line) SELECT * FROM unnest(CAST(:ids AS text[]), "
                        "CAST(:lines AS integer[])) ON CONFLICT DO NOTHING RETURNING id"
                    ),
                    {"ids": list(first_in_chunk), "lines": list(first_in_chunk.values())},
                ).scalars()
            )
        else:
            known = set(self._conn.execute(sa.select(table.c.id).where(table.c.id.in_(list(first_in_chunk)))).scalars())
            new = [{"id": i, "line": line} for i, line in first_in_chunk.items() if i not in known]
            if new:
                self._conn.execute(table.insert(), new)
            inserted = {row["id"] for row in new}
        earlier_chunks = [i for i in first_in_chunk if i not in inserted]
        if earlier_chunks:
            lines = dict(
                self._conn.execute(sa.select(table.c.id, table.c.line).where(table.c.id.in_(earlier_chunks))).all()
            )
            for customer_id in earlier_chunks:
                again[first_in_chunk[customer_id]] = lines[customer_id]
        return again

    def analyze(self) -> None:
        """Give PostgreSQL's planner the table's real size (and that of `customers`, which grew in this
        transaction), so the one query that joins them is planned for what they hold, not for empty tables."""
        if self._conn.dialect.name == "postgresql":
            self._conn.exec_driver_sql(f"ANALYZE {self.table.name}")
            self._conn.exec_driver_sql("ANALYZE customers")

    def drop(self) -> None:
        self.table.drop(self._conn, checkfirst=True)
