"""DEP-1: encrypted batch files — the Fernet envelope (fixtures/schemas/dep-envelope.schema.json).

An order system's batches and responses may travel and rest encrypted with the order system's
key. The cipher is Fernet from `cryptography` (AES-128-CBC + HMAC-SHA256, versioned and
authenticated, https://github.com/fernet/spec); the envelope only names it and carries the key's
id, so a file says what it is:

    {"envelope": "fernet", "key_id": "<16 hex>", "content": "dep-batch", "ciphertext": "<token>"}

Refusals (all 422, nothing decrypted is kept): `wrong-key` (the key id names another key, or the
token's HMAC fails: another key, or altered bytes), `ciphertext-truncated` (the token is not a
whole Fernet token: cut short, or not base64), `invalid-envelope` (the envelope's own schema).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from server.domain.errors import invalid

ENVELOPE = "fernet"
# Fernet token: version (1) | timestamp (8) | IV (16) | ciphertext (n x 16, n >= 1) | HMAC (32).
_FIXED = 1 + 8 + 16 + 32
_VERSION = 0x80


def new_key() -> str:
    """A new order-system key: 32 random bytes, url-safe base64 (Fernet's key format)."""
    return Fernet.generate_key().decode("ascii")


def key_id(key: str) -> str:
    """The id the envelope carries: 16 hex digits of SHA-256 of the key's text (not a secret)."""
    return hashlib.sha256(key.strip().encode("ascii")).hexdigest()[:16]


def check_key(key: str) -> str:
    """The key's text if it is a Fernet key, else 422 `invalid-key` (never echoing it)."""
    text = key.strip()
    try:
        Fernet(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise invalid(
            "invalid-key", "A key is 32 bytes in url-safe base64 (44 characters), as the server gave it."
        ) from None
    return text


def is_envelope(document: Any) -> bool:
    return isinstance(document, dict) and "envelope" in document


def seal(plaintext: bytes, key: str, content: str) -> dict[str, Any]:
    """Encrypt a batch file's bytes into an envelope."""
    token = Fernet(check_key(key).encode("ascii")).encrypt(plaintext)
    return {"envelope": ENVELOPE, "key_id": key_id(key), "content": content, "ciphertext": token.decode("ascii")}


def seal_json(document: Any, key: str, content: str) -> dict[str, Any]:
    return seal(json.dumps(document, ensure_ascii=False).encode("utf-8"), key, content)


def _whole_token(text: str) -> bool:
    """Does `text` decode to a token of a possible length and version? (A cut token does not.)"""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= _FIXED + 16 and (len(raw) - _FIXED) % 16 == 0 and raw[0] == _VERSION


def open_envelope(envelope: dict[str, Any], key: str | None) -> bytes:
    """The plaintext of an envelope already valid against its schema; 422 on any failure."""
    if key is None:
        raise invalid(
            "no-key",
            "This batch is encrypted, but the order system has no key: submit it in plain JSON, "
            "or register an order system with a key.",
        )
    if "key_id" in envelope and envelope["key_id"] != key_id(key):
        raise invalid(
            "wrong-key", "The batch was encrypted with another key than this order system's (key_id differs)."
        )
    token = str(envelope["ciphertext"])
    if not _whole_token(token):
        raise invalid(
            "ciphertext-truncated",
            "The ciphertext is not a whole Fernet token: it was cut short or damaged in transit.",
        )
    try:
        return Fernet(key.encode("ascii")).decrypt(token.encode("ascii"))
    except InvalidToken:
        raise invalid(
            "wrong-key",
            "The ciphertext does not authenticate with this order system's key: another key, or altered bytes.",
        ) from None
