"""Portal sessions: the session cookie carries the administrator's API token (PROTOCOL §3).

Decisions (docs/portal.md):
- The token is the session: it expires as the token does (`token_hours`), logout deletes it, an
  account disabled or a password reset ends it (the API refuses the token). No session table.
- The cookie is HttpOnly, SameSite=Strict, Path=/, and Secure whenever the request came over TLS.
- CSRF: every form carries HMAC-SHA256(token, "enrollab-portal-csrf"); a state change without it
  (or with another session's) is refused 403 before any API call. It reveals nothing about the
  token and needs no server-side state, so it holds across server processes. Forms also must come
  from this origin when the browser says where they came from (`Origin`).
- The pending second login step (2FA) keeps login and password in a cookie sealed with AES-GCM
  under a key in DATA/portal.key (0600), for 5 minutes: the password never appears in a page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE = "enrollab_session"
PENDING_COOKIE = "enrollab_pending"
PENDING_SECONDS = 300
CSRF_FIELD = "csrf"


def token(request: web.Request) -> str:
    value = request.cookies.get(COOKIE, "")
    return value if value.isascii() and 0 < len(value) <= 128 else ""


def csrf_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"enrollab-portal-csrf", hashlib.sha256).hexdigest()


def csrf_ok(request: web.Request, form: Any) -> bool:
    sent = form.get(CSRF_FIELD, "") if form is not None else ""
    tok = token(request)
    if not tok or not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_for(tok)):
        return False
    return same_origin(request)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not every client says; the CSRF token still has to match
        return True
    return origin == f"{request.scheme}://{request.host}"


def set_session(response: web.StreamResponse, request: web.Request, session_token: str) -> None:
    response.set_cookie(COOKIE, session_token, httponly=True, samesite="Strict", secure=request.secure, path="/")


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(PENDING_COOKIE, path="/")


def _key(data_dir: Path) -> bytes:
    path = data_dir / "portal.key"
    try:
        key = path.read_bytes()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Pending(NamedTuple):
    """A sign-in waiting for its TOTP code: the first factor given (`method` "password" with the
    login name and password, or "certificate", whose connection presents the certificate again)."""

    login: str
    password: str
    method: str = "password"


def seal_pending(data_dir: Path, login: str, password: str, now: float, method: str = "password") -> str:
    nonce = secrets.token_bytes(12)
    plain = json.dumps({"l": login, "p": password, "t": now, "m": method}).encode()
    sealed = AESGCM(_key(data_dir)).encrypt(nonce, plain, b"pending-login")
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_pending(data_dir: Path, request: web.Request, now: float) -> Pending | None:
    value = request.cookies.get(PENDING_COOKIE, "")
    try:
        raw = base64.urlsafe_b64decode(value.encode())
        plain = AESGCM(_key(data_dir)).decrypt(raw[:12], raw[12:], b"pending-login")
        fields = json.loads(plain)
    except Exception:  # absent, tampered with, or sealed under another key: start again
        return None
    if not 0 <= now - float(fields["t"]) <= PENDING_SECONDS:
        return None
    return Pending(str(fields["l"]), str(fields["p"]), str(fields.get("m", "password")))


def set_pending(response: web.StreamResponse, request: web.Request, sealed: str) -> None:
    response.set_cookie(
        PENDING_COOKIE, sealed, httponly=True, samesite="Strict", secure=request.secure, path="/login",
        max_age=PENDING_SECONDS,
    )
