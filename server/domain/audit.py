"""Audit log entries (LOG-1) and the redaction of secrets in their messages.

`account_id` is the account the entry is filed under (the account acted for or upon; its
subtree's administrators see it), `login` the administrator, `acting_as` the account it switched
into (ACC-9) or None — so a switched action carries both identities (login → own account, acting_as).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from server.domain.errors import DomainError

Status = Literal["SUCCESS", "FAIL"]

# The guide's Log Viewer "Process Name" values, plus LABEL (DEV-8), FIRMWARE (device families)
# and SWITCH (ACC-9 switch account) for operations the guide logs without naming a process.
PROCESSES = frozenset(
    {
        "ACCOUNT",
        "USER",
        "PROFILE",
        "SITE",
        "CODE",
        "DEVICE",
        "JOB",
        "LOGIN",
        "ENROLLMENT",
        "SETTINGS",
        "LINK",
        "LABEL",
        "FIRMWARE",
        "SWITCH",
    }
)
MAX_MESSAGE_CHARS = 4_000
MASK = "****"

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
# scheme://user:password@ — the password runs to the last "@" of the token, so an unescaped
# "@" inside it cannot leave a tail behind; over-masking a path is the safe side to err on.
_URL_PASSWORD = re.compile(r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"<>]*):[^\s\"<>]*@")
_AUTHORIZATION = re.compile(
    r"(?P<prefix>\bauthorization[\"']?\s*[=:]\s*[\"']?)(?:(?:bearer|basic|digest)\s+)?[^\s\"']+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<prefix>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_SENSITIVE_NAME = (
    r"(?:[A-Za-z0-9]+[_-])*"
    r"(?:password|passwd|pwd|passphrase|secret|token|otp|totp|api[_-]?key|pin)"
    r"(?:[_-][A-Za-z0-9]+)*"
)
_KEY_VALUE = re.compile(
    rf"(?P<prefix>(?<![A-Za-z0-9])[\"']?{_SENSITIVE_NAME}[\"']?\s*[=:]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s&]+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AuditEntry:
    """One logged operation (LOG-1); `message` is already redacted."""

    at: datetime
    account_id: str | None
    login: str | None
    acting_as: str | None
    process: str
    client_host: str | None
    action: str
    status: Status
    message: str

    @property
    def effective_account_id(self) -> str | None:
        """ACC-9, LOG-1: the account the operation was done in, for subtree visibility."""
        return self.acting_as or self.account_id

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "account_id": self.account_id,
            "login": self.login,
            "acting_as": self.acting_as,
            "process": self.process,
            "client_host": self.client_host,
            "action": self.action,
            "status": self.status,
            "message": self.message,
        }


def redact(text: str) -> str:
    """LOG-1: mask secrets in a log message.

    URL passwords (`scheme://user:pass@host` → `user:****@`), `key=value` / `key: value`
    secrets (password, secret, token, otp, api key, pin — also inside longer names such as
    new_password or client_secret, quoted or not), Authorization headers, bearer tokens and
    PEM private keys.
    """
    return _redact(text, screened=True)


# What each pattern cannot match without (checked on ASCII text, where IGNORECASE is plain
# lower-casing; other text goes through every pattern): most messages need no pattern at all,
# and running all five costs an enrollment's audit entry ~0.1 ms. `screened=False` runs every
# pattern (the reference the screening is tested against).
_SENSITIVE_WORDS = ("pass", "pwd", "secret", "token", "otp", "api", "pin")


def _redact(text: str, *, screened: bool) -> str:
    plain = screened and text.isascii()
    lower = text.lower() if plain else ""
    if not plain or "PRIVATE KEY-----" in text:
        text = _PRIVATE_KEY.sub("[private key redacted]", text)
    if not plain or ("://" in text and "@" in text):
        text = _URL_PASSWORD.sub(rf"\g<prefix>:{MASK}@", text)
    if not plain or "authorization" in lower:
        text = _AUTHORIZATION.sub(rf"\g<prefix>{MASK}", text)
    if not plain or "Bearer" in text:
        text = _BEARER.sub(rf"\g<prefix>{MASK}", text)
    if not plain or (("=" in text or ":" in text) and any(word in lower for word in _SENSITIVE_WORDS)):
        text = _KEY_VALUE.sub(_mask_value, text)
    return text


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" and len(value) > 1 else ""
    return f"{match.group('prefix')}{quote}{MASK}{quote}"


def _invalid_entry(detail: str, value: Any) -> DomainError:
    return DomainError("invalid-log-entry", detail, 422, value)


def normalise_status(status: str | bool) -> Status:
    """LOG-1: an entry's status is SUCCESS or FAIL (a bool means success/failure)."""
    if isinstance(status, bool):
        return "SUCCESS" if status else "FAIL"
    upper = status.strip().upper() if isinstance(status, str) else ""
    if upper == "SUCCESS":
        return "SUCCESS"
    if upper in ("FAIL", "FAILURE", "FAILED"):
        return "FAIL"
    raise _invalid_entry("A log entry's status is SUCCESS or FAIL.", status)


def normalise_process(process: str) -> str:
    """LOG-1: the process names a known area (PROCESSES), upper-case as the Log Viewer shows it."""
    upper = process.strip().upper() if isinstance(process, str) else ""
    if upper not in PROCESSES:
        raise _invalid_entry(
            f"{process!r} is not a log process; the processes are {', '.join(sorted(PROCESSES))}.", process
        )
    return upper


def make_entry(
    *,
    at: datetime,
    process: str,
    action: str,
    status: str | bool,
    message: str = "",
    account_id: str | None = None,
    login: str | None = None,
    acting_as: str | None = None,
    client_host: str | None = None,
) -> AuditEntry:
    """LOG-1, ACC-9: build a log entry; secrets in the message are masked, both identities kept.

    `at` must carry a time zone: entries from several servers are compared.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise _invalid_entry("A log entry's time must carry a time zone.", at.isoformat())
    if not action.strip():
        raise _invalid_entry("A log entry needs an action.", action)
    masked = redact(message)
    if len(masked) > MAX_MESSAGE_CHARS:
        masked = masked[: MAX_MESSAGE_CHARS - 1] + "…"
    return AuditEntry(
        at=at,
        account_id=account_id,
        login=login,
        acting_as=acting_as if acting_as != account_id else None,
        process=normalise_process(process),
        client_host=client_host,
        action=action.strip(),
        status=normalise_status(status),
        message=masked,
    )
