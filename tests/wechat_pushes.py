"""How WeChat signs and encrypts the pushes it sends to an Official Account's server (the test's side of it).

The encryption is written here from WeChat's description, independently of `outreach.web.wechat_crypto`, and
the tests also decrypt a ciphertext from Tencent's own sample code, so the two sides cannot share a mistake.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TIMESTAMP = "1732838400"
NONCE = "8271635"


def sha1_of_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def url_params(token: str, **extra: str) -> dict[str, str]:
    """The query string WeChat adds to a push: timestamp, nonce and their signature."""
    return {"timestamp": TIMESTAMP, "nonce": NONCE, "signature": sha1_of_sorted(token, TIMESTAMP, NONCE), **extra}


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


def safe_mode(token: str, encoding_aes_key: str, app_id: str, message: bytes) -> tuple[dict[str, str], bytes]:
    """The query string and body of `message` pushed in safe mode."""
    encrypted = encrypt(encoding_aes_key, app_id, message)
    params = url_params(token, encrypt_type="aes", msg_signature=sha1_of_sorted(token, TIMESTAMP, NONCE, encrypted))
    return params, fields_xml({"ToUserName": "gh_bank", "Encrypt": encrypted})
