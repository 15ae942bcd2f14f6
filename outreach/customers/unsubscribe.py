"""Unsubscribe links: customer, channel and purpose sealed with AES-SIV, so a link can be neither read (the
bank's customer id is not in it) nor forged nor pointed at someone else; links of the older, signed-only
format that are still in inboxes keep working.

A token is the base64url of `AES-SIV(customer|channel|purpose)` (the 16-byte tag first), with no `.`; its key
is derived (HKDF-SHA256, under its own label) from the signing key, which itself is then only used as the
HMAC key that verifies older tokens: no key does two jobs. AES-SIV is
deterministic on purpose: the same customer, channel and purpose always give the same link, as they did
before, so a message rendered again at send time is the one planned, and a test send can find the real link
in its text and replace it. The older tokens are `base64url(customer|channel|purpose).base64url(HMAC-SHA256
[:16])`, verified exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Engine

from outreach.core.settings import Settings
from outreach.store.database import insert_ignoring_duplicates
from outreach.store.schema import meta

_MAC_BYTES = 16
# Bound into every sealed token (AES-SIV's associated data) and into its key: a token of this format only.
_CONTEXT = b"outreach unsubscribe token v2"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


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


@functools.lru_cache(maxsize=8)
def _sealer(key: bytes) -> AESSIV:
    """AES-256-SIV under a key derived from the signing key (made once per key: planning seals millions)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_CONTEXT).derive(key)
    return AESSIV(derived)


def make_token(key: bytes, customer_id: str, channel: str, purpose: str) -> str:
    """The token of a customer's unsubscribe link for one channel and purpose: opaque, authenticated, and the
    same every time for the same three (see the module's docstring)."""
    payload = f"{customer_id}|{channel}|{purpose}".encode()
    return _b64(_sealer(key).encrypt(payload, [_CONTEXT]))


def read_token(key: bytes, token: str) -> tuple[str, str, str] | None:
    """(customer_id, channel, purpose) of a genuine token, of either format; None for anything forged or
    altered."""
    if "." in token:  # base64url has no `.`: only the older, signed format has one
        return _read_signed(key, token)
    # Only the one spelling make_token writes: urlsafe_b64decode would skip stray characters and ignore the
    # spare bits of the last one, so other texts could open the same token.
    if not _B64URL.fullmatch(token):
        return None
    try:
        sealed = _unb64(token)
        if _b64(sealed) != token:
            return None
        payload = _sealer(key).decrypt(sealed, [_CONTEXT]).decode("utf-8")
    except (ValueError, binascii.Error, InvalidTag):
        return None
    # channel and purpose are words without `|`; a customer id may hold one
    parts = payload.rsplit("|", 2)
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def _read_signed(key: bytes, token: str) -> tuple[str, str, str] | None:
    """A token of the older format (readable payload, truncated HMAC), verified exactly as it always was."""
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
