"""Administrator credentials: password hashing and policy, reset tokens, TOTP (USR-1, USR-2, USR-4).

Decisions:
- Passwords: at least 10 and at most 256 characters (argon2 cost grows with input; 256 is
  far beyond any pass phrase), from at least two of: lower case, upper case, digits, other;
  and not the login name itself. Errors never carry the password as their value.
- Reset tokens: the link carries a random token; the store keeps only its SHA-256, so a
  database leak yields no usable link. A token is usable from its creation for exactly five
  minutes (at 5:00 it is expired) and once.
- TOTP: RFC 6238 defaults (SHA-1, 6 digits, 30 s), one step of clock drift either side.
  `matching_totp_step` tells the store which step matched, so it can refuse a replayed code.
- Login names: 3-254 characters, either an e-mail address (the guide uses the business
  e-mail as login) or a simple name of letters, digits, `.`, `_`, `-`. Uniqueness is the
  store's job.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.domain.errors import invalid

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (argon2-cffi's default)

# A precomputed hash to verify against when a login name is unknown, so the answer's timing
# does not reveal which names exist.
DUMMY_HASH = _HASHER.hash("enrollab-dummy-password")


def use_test_profile() -> None:
    """Cheaper argon2 parameters for the project's own test suite only (ENROLLAB_PASSWORD_HASH=test).

    Hashes made with them still verify under the default profile and are re-hashed at the next login.
    """
    global _HASHER, DUMMY_HASH
    _HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    DUMMY_HASH = _HASHER.hash("enrollab-dummy-password")


def hash_password(password: str) -> str:
    """USR-1: an argon2id hash (salt and parameters included) of a password."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """USR-1: does `password` match `stored_hash`? A malformed hash never matches."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    """USR-1: True when the hash was made with weaker parameters than today's (rehash at login)."""
    return _HASHER.check_needs_rehash(stored_hash)


def password_is_temporary(set_by_user_id: str, owner_user_id: str) -> bool:
    """USR-1: a password set by someone other than its owner must be changed at first login."""
    return set_by_user_id != owner_user_id


PASSWORD_MIN = 10
PASSWORD_MAX = 256


def _character_classes(password: str) -> int:
    # Unicode-aware, so "ÄÖÜäöü..." mixes upper and lower case like "AOUaou" does.
    kinds = {
        "lower" if ch.islower() else "upper" if ch.isupper() else "digit" if ch.isdigit() else "other"
        for ch in password
    }
    return len(kinds)


def check_password_policy(password: object, *, login: str | None = None) -> None:
    """USR-1: a password is 10-256 characters from at least two character classes and is not
    the login name. Refusal: `weak-password` (the password is never echoed back)."""
    if not isinstance(password, str):
        raise invalid("weak-password", "The password must be a string.")
    if len(password) < PASSWORD_MIN:
        raise invalid(
            "weak-password",
            f"The password has {len(password)} characters; at least {PASSWORD_MIN} are required.",
        )
    if len(password) > PASSWORD_MAX:
        raise invalid("weak-password", f"The password is longer than {PASSWORD_MAX} characters.")
    if _character_classes(password) < 2:
        raise invalid(
            "weak-password",
            "The password uses only one kind of character; mix at least two of lower case, "
            "upper case, digits and other characters.",
        )
    if login is not None and password.casefold() == login.casefold():
        raise invalid("weak-password", "The password must not be the login name.")


_LOGIN_SIMPLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOGIN_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


def check_login_name(login: object) -> str:
    """USR-1: a login name is 3-254 characters, an e-mail address or a simple name
    (letters, digits, `.`, `_`, `-`, starting with a letter or digit). Refusal: `invalid-login`."""
    if not isinstance(login, str):
        raise invalid("invalid-login", "The login name must be a string.", value=login)
    if not 3 <= len(login) <= 254:
        raise invalid(
            "invalid-login",
            f"The login name has {len(login)} characters; 3 to 254 are allowed.",
            value=login,
        )
    if not (_LOGIN_SIMPLE.fullmatch(login) or _LOGIN_EMAIL.fullmatch(login)):
        raise invalid(
            "invalid-login",
            "A login name is an e-mail address or letters, digits, '.', '_' and '-' starting with a letter or digit.",
            value=login,
        )
    return login


RESET_TOKEN_LIFETIME = timedelta(minutes=5)


class ResetToken(NamedTuple):
    """USR-2: `token` goes into the e-mailed link; only `digest` is stored."""

    token: str
    digest: str


def reset_token_digest(token: str) -> str:
    """USR-2: the stored form of a reset token (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_reset_token() -> ResetToken:
    """USR-2: a new unguessable reset token and its digest."""
    token = secrets.token_urlsafe(32)
    return ResetToken(token, reset_token_digest(token))


def reset_token_matches(token: str, stored_digest: str) -> bool:
    """USR-2: constant-time comparison of a presented token with a stored digest."""
    return hmac.compare_digest(reset_token_digest(token), stored_digest)


def reset_token_refusal(created_at: datetime, used_at: datetime | None, now: datetime) -> str | None:
    """USR-2: why a reset token cannot be used (`reset-token-used`, `reset-token-expired`), or None.

    It works once, and only during the five minutes after its creation.
    """
    if used_at is not None:
        return "reset-token-used"
    if not created_at <= now < created_at + RESET_TOKEN_LIFETIME:
        return "reset-token-expired"
    return None


def reset_token_usable(created_at: datetime, used_at: datetime | None, now: datetime) -> bool:
    """USR-2: a reset link expires after exactly 5 minutes and works once."""
    return reset_token_refusal(created_at, used_at, now) is None


TOTP_DRIFT_STEPS = 1


def new_totp_secret() -> str:
    """USR-4: a new TOTP secret, 160 random bits as 32 base32 characters (no padding)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _clean_code(code: object) -> str | None:
    # Authenticator apps show "123 456"; people type what they see.
    if not isinstance(code, str):
        return None
    digits = code.replace(" ", "")
    return digits if re.fullmatch(r"[0-9]{6}", digits) else None


def matching_totp_step(secret: str, code: object, now: datetime) -> int | None:
    """USR-4: the TOTP time step that `code` matches at `now` (±1 step of drift), or None.

    The store remembers the last accepted step per administrator and refuses codes for a
    step not after it, so a code seen over someone's shoulder cannot be replayed.
    """
    digits = _clean_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def verify_totp(secret: str, code: object, now: datetime) -> bool:
    """USR-4: with 2FA on, a login needs a valid TOTP code (±1 step of clock drift)."""
    return matching_totp_step(secret, code, now) is not None


def totp_uri(secret: str, login: str, issuer: str = "enrollab") -> str:
    """USR-4: the otpauth:// URI an authenticator app scans (as a QR code) to set up 2FA."""
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)
