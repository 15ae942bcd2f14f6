"""Addresses that more than one customer has: a family's shared mailbox, a phone number imported twice.

A service message carries one customer's private details (a card's last digits, a balance), so sending it to
an address another customer also has may show them to the wrong person. Imports report such addresses;
campaigns decide per purpose (`shared_address: suppress | send`, settings `shared_address_service` /
`shared_address_marketing`) whether to send to them. Emails compare case-insensitively (the index is on
lower(email)); provisional profiles (strangers who wrote to us) and addresses marked invalid never count as
sharing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach.core.errors import InputError
from outreach.core.settings import Settings
from outreach.store.fields import ADDRESS_FIELDS
from outreach.store.schema import customers

REASON = "shared_address"
Policy = Literal["suppress", "send"]
POLICIES: tuple[Policy, ...] = ("suppress", "send")
# The address columns that can be shared between customers, by channel.
SHAREABLE = {channel: fields[0] for channel, fields in ADDRESS_FIELDS.items()}
# address column -> the column that marks it invalid (an invalid address is never sent to, so shares nothing)
_INVALID_FLAG = {fields[0]: fields[1] for fields in ADDRESS_FIELDS.values()}
_QUERY_CHUNK = 500


def _key(column: str) -> sa.ColumnElement[str]:
    value = customers.c[column]
    return sa.func.lower(value) if column == "email" else value


def _normal(column: str, value: str) -> str:
    return value.lower() if column == "email" else value


def sharing(conn: Connection, column: str, addresses: Iterable[str]) -> dict[str, list[str]]:
    """Of `addresses` (values of the address column `column`), those more than one customer has, each with
    the ids of those customers in id order. Keys are as compared (emails in lower case)."""
    wanted = sorted({_normal(column, a) for a in addresses if a})
    found: dict[str, list[str]] = defaultdict(list)
    key = _key(column)
    usable = sa.and_(customers.c.provisional_since.is_(None), customers.c[_INVALID_FLAG[column]].is_(None))
    for start in range(0, len(wanted), _QUERY_CHUNK):
        part = wanted[start : start + _QUERY_CHUNK]
        shared = (
            sa.select(key.label("address"))
            .where(key.in_(part), usable)
            .group_by(key)
            .having(sa.func.count() > 1)
            .subquery()
        )
        rows = conn.execute(
            sa.select(shared.c.address, customers.c.id)
            .join(shared, key == shared.c.address)
            .where(usable)
            .order_by(shared.c.address, customers.c.id)
        )
        for address, customer_id in rows:
            found[str(address)].append(str(customer_id))
    return dict(found)


def shared_with_file(conn: Connection, column: str, file: sa.Table) -> dict[str, list[tuple[str, int | None]]]:
    """The addresses of the address column `column` that more than one customer has and that a customer of
    `file` (a table of `id, line`: an import's customers, see customers/imported_ids) has, each with its
    holders in id order as (customer id, their line in the file or None). One query, whatever the file's size:
    the file's addresses, those of them held more than once, and their holders."""
    key = _key(column)
    usable = sa.and_(customers.c.provisional_since.is_(None), customers.c[_INVALID_FLAG[column]].is_(None))
    in_file = (
        sa.select(key)
        .select_from(customers.join(file, file.c.id == customers.c.id))
        .where(usable, customers.c[column].is_not(None))
    )
    shared = (
        sa.select(key.label("address"))
        .where(usable, key.in_(in_file))
        .group_by(key)
        .having(sa.func.count() > 1)
        .subquery()
    )
    rows = conn.execute(
        sa.select(shared.c.address, customers.c.id, file.c.line)
        .join(shared, key == shared.c.address)
        .outerjoin(file, file.c.id == customers.c.id)
        .where(usable)
        .order_by(shared.c.address, customers.c.id)
    )
    found: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
    for address, customer_id, line in rows:
        found[str(address)].append((str(customer_id), None if line is None else int(line)))
    return dict(found)


def others_at(groups: dict[str, list[str]], column: str, address: str | None, customer_id: str) -> list[str]:
    """The other customers who share `address` with `customer_id` (none when it is not shared)."""
    if not address:
        return []
    return [c for c in groups.get(_normal(column, address), []) if c != customer_id]


def policy(declared: Policy | None, purpose: str, settings: Settings) -> Policy:
    """Whether a campaign sends to shared addresses: what it declares (`shared_address`), else the setting of
    its purpose."""
    if declared is not None:
        return declared
    name = f"shared_address_{purpose}"
    configured = getattr(settings, name, "send")
    if configured not in POLICIES:
        raise InputError.single(name, f"{configured!r}: use suppress or send")
    return "suppress" if configured == "suppress" else "send"
