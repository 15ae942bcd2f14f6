"""Bulk writes on PostgreSQL through `COPY ... FROM STDIN` (psycopg 3), in the caller's transaction.

`copy_rows` streams plain rows into a table. `copy_insert_returning` is the bulk form of `INSERT ... ON
CONFLICT DO NOTHING RETURNING`: the rows get ids from the table's sequence and are copied straight in; if one
of them conflicts with a row already there (another run wrote it meanwhile), that copy is undone (a
savepoint) and the rows go through a temporary table (dropped at commit) and one `INSERT ... SELECT ... ON
CONFLICT DO NOTHING`, so duplicates are skipped exactly as a plain insert would skip them.
Both take rows as dicts with the same keys (the first row's keys are the columns); JSON columns are sent as
JSON text. Measured on 20,000 ledger rows, about 5 times faster than psycopg's pipelined `executemany`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class JsonText(str):
    """A JSON column's value already encoded (the same document for many rows is encoded once)."""


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def copy_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write `rows` into `table` with COPY (PostgreSQL only)."""
    if rows:
        _copy(conn, table.name, table, list(rows[0]), rows)


def copy_insert_returning(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """Insert `rows`, skipping those that conflict with a row already there; the `returning` columns of the
    rows inserted, in the order given (PostgreSQL only). The table's key is `id`, from its sequence."""
    if not rows:
        return []
    import psycopg

    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor:
        cursor.execute(
            f"SELECT array_agg(nextval(pg_get_serial_sequence('{table.name}', 'id'))) FROM generate_series(1, %s)",
            (len(rows),),
        )
        found = cursor.fetchone()
    assert found is not None
    ids: list[int] = found[0]
    with_ids = [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
    try:
        with conn.begin_nested():
            _copy(conn, table.name, table, list(with_ids[0]), with_ids)
    except psycopg.errors.UniqueViolation:
        return _insert_through_staging(conn, table, rows, returning)
    return [tuple(row[c] for c in returning) for row in with_ids]


def copy_update(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> None:
    """Update rows of `table` found by the columns `keys` with the other columns of `rows` (all rows have the
    same columns): copied into a temporary table and applied by one `UPDATE ... FROM` (PostgreSQL only)."""
    if not rows:
        return
    columns = list(rows[0])
    staging = f"staging_{table.name}_{uuid.uuid4().hex[:8]}"
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {', '.join(columns)} FROM {table.name} WITH NO DATA"
    )
    _copy(conn, staging, table, columns, rows)
    assignments = ", ".join(f"{c} = s.{c}" for c in columns if c not in keys)
    matched = " AND ".join(f"{table.name}.{k} = s.{k}" for k in keys)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {assignments} FROM {staging} AS s WHERE {matched}")
    conn.exec_driver_sql(f"DROP TABLE {staging}")


def _insert_through_staging(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    columns = list(rows[0])
    staging = f"staging_{table.name}_{uuid.uuid4().hex[:8]}"
    names = ", ".join(columns)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {table.name} WITH NO DATA"
    )
    _copy(conn, staging, table, columns, rows)
    result = conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "
        f"ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
    )
    inserted = [tuple(r) for r in result]
    conn.exec_driver_sql(f"DROP TABLE {staging}")
    return inserted


def _copy(
    conn: Connection, target: str, table: sa.Table, columns: list[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    import psycopg

    json_columns = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.JSON)]
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in columns]
            for i in json_columns:
                if values[i] is not None and not isinstance(values[i], JsonText):
                    values[i] = json.dumps(values[i], ensure_ascii=False, separators=(",", ":"))
            copy.write_row(values)
