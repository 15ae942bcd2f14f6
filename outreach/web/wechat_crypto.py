"""WeChat's safe mode (安全模式): the message signature and the AES decryption of an encrypted push.

In safe mode WeChat adds `encrypt_type=aes` and `msg_signature` to the URL and puts the message, encrypted,
in the `<Encrypt>` field of the body. `msg_signature` is the SHA-1 of the sorted token, timestamp, nonce and
`Encrypt` value. The key is the Official Account's EncodingAESKey: 43 base64 characters, 32 bytes decoded;
the cipher is AES-256-CBC with the key's first 16 bytes as IV and PKCS#7 padding to 32-byte blocks. The
plaintext is 16 random bytes, the message's length (4 bytes, big-endian), the message, and the app id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from outreach.core.errors import InputError, OutreachError

KEY_ENV = "OUTREACH_WECHAT_AES_KEY"
BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


class DecryptionError(OutreachError):
    """The `Encrypt` field is not a message encrypted for this account with this key."""


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key of an EncodingAESKey; InputError (naming its variable, not its value) otherwise."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise InputError.single(KEY_ENV, "expected the 43 characters of the Official Account's EncodingAESKey")
    return key


def message_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected, given)


def decrypt(key: bytes, app_id: str, encrypted: str) -> bytes:
    """The message inside `encrypted`, checked to be addressed to `app_id`."""
    try:
        ciphertext = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("not base64") from None
    if not ciphertext or len(ciphertext) % 16:
        raise DecryptionError("not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise DecryptionError("bad padding")
    content = padded[16:-pad]
    if len(content) < 4:
        raise DecryptionError("too short")
    length = int.from_bytes(content[:4], "big")
    message, receiver = content[4 : 4 + length], content[4 + length :]
    if len(message) != length or not hmac.compare_digest(receiver, app_id.encode()):
        raise DecryptionError("not addressed to this Official Account")
    return message
