"""Signed webhooks per account (issue 16): event types, the URL rule, the signature, the back-off.

Pure rules, no I/O: the store (`server.store.webhooks`) queues and delivers, the admin API
(`server.api.webhooks`) registers. docs/webhooks.md is the receiver's side of this contract.

Decisions:
- A webhook hears the events of its account and of the account's whole subtree (ACC-7: what
  its administrators may see). An event filed under no account (a device nobody holds locked
  out by wrong codes) is the platform's.
- URL: `http` or `https`, a host, no user info (credentials in a URL end up in logs), at most
  `URL_MAX` characters, no fragment. Loopback and private addresses are allowed on purpose:
  this is a lab tool and receivers usually run on the lab machine or the lab network (a
  hosted service would refuse them to stop requests into its own network).
- Signature: HMAC-SHA256 with the webhook's secret over `"{t}.{body}"`, `t` the Unix seconds of
  the attempt, sent as `Enrollab-Signature: t=<t>,v1=<hex>`. Every attempt signs again with a
  fresh `t`; the body and the delivery id stay the same, so a receiver that keeps the ids it
  saw within `REPLAY_WINDOW` detects a replay or a retry of something it already took.
- Retries: `BACKOFF` after the 1st, 2nd, ... failed attempt; after `MAX_ATTEMPTS` attempts the
  delivery is `failed`. A 2xx answer delivers it; 410 Gone disables the webhook (the receiver
  said it is gone for good) and fails the delivery; anything else (another status, a
  connection error, no answer within the attempt timeout) is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from server.domain.errors import invalid


class EventType(StrEnum):
    DEVICE_ENROLLED = "device.enrolled"  # ENR-2: the device endpoint answered a redirect
    DEVICE_LOCKED_OUT = "device.locked-out"  # LCK-2: a wrong code locked the device
    JOB_FINISHED = "job.finished"  # DEV-9: a job (bulk actions, import, association) ended
    IMPORT_FAILED = "import.failed"  # DEV-1: an import ended with rejected rows, or failed
    PING = "webhook.ping"  # sent on request only (POST /webhooks/{id}/ping), never subscribed to


SUBSCRIBABLE: tuple[str, ...] = tuple(e.value for e in EventType if e is not EventType.PING)

URL_MAX = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of generated secrets, not a secret
SIGNATURE_HEADER = "Enrollab-Signature"
EVENT_HEADER = "Enrollab-Event"
DELIVERY_HEADER = "Enrollab-Delivery"
REPLAY_WINDOW = timedelta(minutes=5)  # what docs/webhooks.md tells receivers to refuse beyond

# Waits after the 1st, 2nd, ... failed attempt; the attempt after the last wait is the last one.
BACKOFF: tuple[timedelta, ...] = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
ATTEMPT_TIMEOUT_SECONDS = 10.0  # one attempt's whole exchange (connect, send, answer)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def new_secret() -> str:
    """A webhook's signing secret: 32 random bytes, URL-safe text (`secrets`)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_id(prefix: str) -> str:
    """An event (`evt_`) or delivery (`dlv_`) id: unique, not guessable, the same on every retry."""
    return f"{prefix}_{secrets.token_hex(12)}"


def check_url(url: str) -> str:
    """The webhook URL rule (module docstring): the URL, stripped; 422 `invalid-webhook-url` otherwise."""
    text = url.strip()

    def refuse(why: str, quote: bool = True) -> Exception:
        return invalid("invalid-webhook-url", f"The webhook URL {why}.", text[:200] if quote else None)

    if not text or len(text) > URL_MAX:
        raise refuse(f"must have 1 to {URL_MAX} characters")
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
        raise refuse("must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise refuse("is not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("must not carry a user name or password", quote=False)  # a password is not echoed
    host = parts.hostname or ""
    if not host:
        raise refuse("must name a host")
    if parts.fragment:
        raise refuse("must not have a #fragment")
    if port == 0:
        raise refuse("must not name port 0")
    if host.startswith("[") or ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise refuse("names no valid host") from None
    return text


def check_events(events: Iterable[str]) -> list[str]:
    """The subscribed event types, each once, in `SUBSCRIBABLE` order; 422 for an unknown one or none."""
    wanted = list(events)
    unknown = [e for e in wanted if e not in SUBSCRIBABLE]
    if unknown:
        raise invalid(
            "invalid-webhook-event",
            f"Unknown event type {unknown[0]!r}; the types are {', '.join(SUBSCRIBABLE)}.",
            unknown[0],
        )
    if not wanted:
        raise invalid("invalid-webhook-event", "A webhook needs at least one event type.")
    return [e for e in SUBSCRIBABLE if e in wanted]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 hex of `"{timestamp}.{body}"` with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: datetime, window: timedelta = REPLAY_WINDOW) -> bool:
    """What a receiver checks (docs/webhooks.md): a `v1` signature that matches, and a timestamp
    no further than `window` from `now`."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > window.total_seconds():
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def event_body(event_id: str, event_type: str, created_at: datetime, account_id: str | None,
               data: Mapping[str, Any]) -> str:
    """The JSON body every delivery of the event sends (the exact text is stored and signed)."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": created_at.isoformat(),
            "account_id": account_id,
            "data": dict(data),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed attempts; None: no more (the delivery failed)."""
    if attempts >= MAX_ATTEMPTS or attempts < 1:
        return None
    return now + BACKOFF[attempts - 1]


def outcome(status: int | None) -> str:
    """What an attempt's answer means: `delivered` (2xx), `gone` (410: disable), `retry` (else)."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry"


def account_ids_of_path(path: str | None) -> list[str]:
    """The account and its ancestors named by a materialised path `/A/B/C/` (root first)."""
    return [part for part in (path or "").split("/") if part]


def subscribed(events: Any, event_type: str) -> bool:
    return isinstance(events, list) and event_type in events
