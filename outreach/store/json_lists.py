"""JSON lists in SQL, the same on both stores: whether a list (a JSON column, or one member of a JSON object
column) holds a text value. Lists of attributes (`'savings' in products`) and conversation tags use it."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement


def list_contains(column: Any, value: str, dialect: str, key: str | None = None) -> ColumnElement[bool]:
    """True where the JSON list `column` (or `column`'s member `key`) holds the text `value`; false where
    there is no list."""
    if dialect == "postgresql":
        target = column if key is None else column.op("->")(sa.literal(key))
        holds = target.bool_op("@>")(sa.cast(sa.literal(json.dumps([value])), JSONB))
        return sa.func.coalesce(holds, sa.false(), type_=sa.Boolean)
    path = "$" if key is None else '$."' + key + '"'
    each = sa.func.json_each(column, path).table_valued("value", "type")
    return sa.exists(
        sa.select(sa.literal(1)).select_from(each).where(each.c.type == "text", each.c.value == value)
    ).where(sa.func.json_type(column, path) == "array")
