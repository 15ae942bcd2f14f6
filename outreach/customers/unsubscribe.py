"""Signed unsubscribe links: an HMAC over customer, channel and purpose, so a link cannot be forged or
pointed at someone else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.core.settings import Settings
from outreach.store.database import insert_ignoring_duplicates
from outreach.store.schema import meta

_MAC_BYTES = 16


def signing_key(engine: Engine, settings: Settings) -> bytes:
    """OUTREACH_SECRET_KEY if set, else this installation's random key kept in the database."""
    if settings.secret_key:
        return settings.secret_key.encode()
    with engine.begin() as conn:
        conn.execute(insert_ignoring_duplicates(conn, meta).values(key="secret_key", value=secrets.token_urlsafe(32)))
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "secret_key")).scalar_one()
    return str(value).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, customer_id: str, channel: str, purpose: str) -> str:
    payload = f"{customer_id}|{channel}|{purpose}".encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(key: bytes, token: str) -> tuple[str, str, str] | None:
    """(customer_id, channel, purpose) of a genuine token; None for anything forged or altered."""
    try:
        payload_text, mac_text = token.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    parts = payload.decode("utf-8", "replace").split("|")
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/u/{token}"
