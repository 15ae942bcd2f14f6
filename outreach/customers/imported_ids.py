"""The customers an import has written, with their lines in the file: a temporary table of the import's
transaction, so that questions about the whole file (which of its addresses are shared) are asked once, by
joining it, instead of once per chunk."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
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

    def add(self, rows: Iterable[tuple[str, int]]) -> None:
        """Note customers written (id, line); one statement."""
        values = [{"id": i, "line": line} for i, line in rows]
        if values:
            self._conn.execute(self.table.insert(), values)

    def analyze(self) -> None:
        """Give PostgreSQL's planner the table's real size (and that of `customers`, which grew in this
        transaction), so the one query that joins them is planned for what they hold, not for empty tables."""
        if self._conn.dialect.name == "postgresql":
            self._conn.exec_driver_sql(f"ANALYZE {self.table.name}")
            self._conn.exec_driver_sql("ANALYZE customers")

    def drop(self) -> None:
        self.table.drop(self._conn, checkfirst=True)
