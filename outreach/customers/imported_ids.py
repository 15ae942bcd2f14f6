"""The customers an import has written, with their lines in the file: a temporary table of the import's
transaction, so that questions about the whole file (which of its addresses are shared) are asked once, by
joining it, instead of once per chunk."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from outreach.store.bulk_copy import copy_rows


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
        again. Two statements, whatever the size of the file so far."""
        postgresql = self._conn.dialect.name == "postgresql"
        ids = [i for i, _line in rows]
        key = self.table.c.id
        among = key == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.String))) if postgresql else key.in_(ids)
        first = dict(self._conn.execute(sa.select(self.table.c.id, self.table.c.line).where(among)).all())
        again: dict[int, int] = {}
        new: list[dict[str, Any]] = []
        for customer_id, line in rows:
            earlier = first.setdefault(customer_id, line)
            if earlier != line:
                again[line] = earlier
            else:
                new.append({"id": customer_id, "line": line})
        if new and postgresql:
            copy_rows(self._conn, self.table, new)
        elif new:
            self._conn.execute(self.table.insert(), new)
        return again

    def analyze(self) -> None:
        """Give PostgreSQL's planner the table's real size (and that of `customers`, which grew in this
        transaction), so the one query that joins them is planned for what they hold, not for empty tables."""
        if self._conn.dialect.name == "postgresql":
            self._conn.exec_driver_sql(f"ANALYZE {self.table.name}")
            self._conn.exec_driver_sql("ANALYZE customers")

    def drop(self) -> None:
        self.table.drop(self._conn, checkfirst=True)
