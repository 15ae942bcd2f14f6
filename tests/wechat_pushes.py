"""How WeChat signs and encrypts the pushes it sends to an Official Account's server (the test's side of it).

The encryption is written here from WeChat's description, independently of `outreach.web.wechat_crypto`, and
the tests also decrypt a ciphertext from Tencent's own sample code, so the two sides cannot share a mistake.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from datetime import timedelta

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from outreach.store.database import utcnow


def sha1_of_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def timestamp_now(offset: timedelta = timedelta(0)) -> str:
    """WeChat's timestamp for a push sent now (`offset` from now), on the engine's clock: the one the server
    checks it against, which a test may have moved ahead."""
    return str(int((utcnow() + offset).timestamp()))


def new_nonce() -> str:
    """A nonce no other push of the run has (WeChat's are digits)."""
    return str(secrets.randbelow(10**12))


def url_params(token: str, timestamp: str | None = None, nonce: str | None = None, **extra: str) -> dict[str, str]:
    """The query string WeChat adds to a push: timestamp (now unless given), nonce (a new one unless given)
    and their signature."""
    timestamp = timestamp or timestamp_now()
    nonce = nonce or new_nonce()
    return {"timestamp": timestamp, "nonce": nonce, "signature": sha1_of_sorted(token, timestamp, nonce), **extra}


def fields_xml(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


def encrypt(encoding_aes_key: str, app_id: str, message: bytes) -> str:
    key = base64.b64decode(encoding_aes_key + "=")
    plain = os.urandom(16) + len(message).to_bytes(4, "big") + message + app_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def safe_mode(
    token: str,
    encoding_aes_key: str,
    app_id: str,
    message: bytes,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The query string (the timestamp now and a new nonce, unless given) and body of `message` pushed in
    safe mode."""
    encrypted = encrypt(encoding_aes_key, app_id, message)
    params = url_params(token, timestamp, nonce)
    msg_signature = sha1_of_sorted(token, params["timestamp"], params["nonce"], encrypted)
    return {**params, "encrypt_type": "aes", "msg_signature": msg_signature}, fields_xml(
        {"ToUserName": "gh_bank", "Encrypt": encrypted}
    )
