"""Issue 16 (S15): a device's enrollment timeline, built from what the server recorded — the device
row and its events (`device_events`, written by `server.store.timeline`). Pure: no I/O.

The path (`PATH`), in a device's order of life, each step from (see docs/decisions.md):
- `imported` — the device row (`created_at`, `imported_by`): always done.
- `approved` (DEV-2), `claimed` (DEV-3: which account, by whom, how), `associated` (DEV-4: the
  site), `activated` (DEV-6) — done while the row says so now (a released device's `claimed` is
  pending again; its history keeps the claim); when and by whom from the latest such event.
- `first_contact` — the device's first `POST /device/v1/enroll` the server could verify: the
  earliest `first_contact` event (the row's `last_contact` says it happened for older devices).
- `redirected` — the latest redirect delivered, with the profile URL sent (ENR-2, ENR-6).
- `identity_issued` — the latest identity certificate EST issued (ENR-8): serial, expiry.
- `last_seen` — the latest of the row's `last_contact` and the device's own requests in the events.
A step not reached is `pending` (`at` null), so a page can draw the whole path. `redirected` and
`identity_issued` before the current activation (the device was released and placed again) are
pending too: they belong to its previous placement (still in `history`).

Failures (`FAILURES`) are the refused device requests the server saw: wrong codes, the attempt that
locked the device, attempts while locked, other enrollment refusals (certificate mismatch or
denied, unsupported URL, …) and refused identity certificates; listed in `failures`, oldest first.

`stage` is the furthest path step done (`last_seen` aside); the counts of `GET /fleet/status` use
the same stages, computed in SQL from the row (`server.store.timeline.stage_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PATH = (
    "imported",
    "approved",
    "claimed",
    "associated",
    "activated",
    "first_contact",
    "redirected",
    "identity_issued",
    "last_seen",
)
# The stages a device can be at (the fleet counts): the path without `last_seen`, in order.
STAGES = PATH[:-1]
FAILURES = frozenset(
    {"wrong_code", "lockout", "refused_while_locked", "enrollment_refused", "identity_refused"}
)
# Events that are a device's own request on the device listener (last seen).
DEVICE_REQUESTS = frozenset(
    {"first_contact", "redirected", "code_requested", "firmware_upgrade", "identity_issued"} | FAILURES
)
# Events besides the path and the failures: shown in `history` only.
OTHER_STEPS = frozenset({"released", "code_requested", "firmware_upgrade"})
STEPS = frozenset(PATH) | FAILURES | OTHER_STEPS
HISTORY = 200  # a device that boots every hour for a year: its timeline shows the latest events


@dataclass(frozen=True)
class Event:
    """One recorded step (a `device_events` row)."""

    id: int
    step: str
    at: datetime
    ok: bool = True
    login: str | None = None
    account_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step,
            "ok": self.ok,
            "at": self.at,
            "login": self.login,
            "account_id": self.account_id,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class DeviceRow:
    """The device row's columns the timeline reads."""

    mac: str
    created_at: datetime
    imported_by: str | None = None
    approved: bool = False
    owner_id: str | None = None
    site_id: int | None = None
    associated: bool = False
    activated: bool = False
    last_contact: datetime | None = None
    enrolled_at: datetime | None = None
    identity_issued_at: datetime | None = None
    locked_until: datetime | None = None


def _latest(events: Sequence[Event], step: str) -> Event | None:
    found = [e for e in events if e.step == step]
    return found[-1] if found else None


def _earliest(events: Sequence[Event], step: str) -> Event | None:
    return next((e for e in events if e.step == step), None)


def _who(event: Event | None) -> dict[str, Any]:
    if event is None:
        return {"recorded": False}  # done before the server kept events (0011), or not recorded
    out: dict[str, Any] = {"login": event.login, "account_id": event.account_id}
    out.update(event.detail)
    return out


def _step(name: str, done: bool, at: datetime | None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    if not done:
        return {"step": name, "status": "pending", "at": None, "detail": {}}
    return {"step": name, "status": "done", "at": at, "detail": detail or {}}


def build_timeline(
    device: DeviceRow, events: Iterable[Event], now: datetime, *, history_complete: bool = True
) -> dict[str, Any]:
    """The timeline of `device` from its events (any order, duplicates dropped; ordered by id).
    The store gives the latest event of each step, the first `first_contact` and the latest
    `HISTORY` events; `history_complete` False says it left older ones out."""
    ordered = sorted({e.id: e for e in events}.values(), key=lambda e: e.id)
    steps: list[dict[str, Any]] = [
        _step("imported", True, device.created_at, {"account_id": device.imported_by}),
    ]
    admin = {
        "approved": device.approved,
        "claimed": device.owner_id is not None,
        "associated": device.associated and device.site_id is not None,
        "activated": device.activated,
    }
    for name, done in admin.items():
        event = _latest(ordered, name)
        steps.append(_step(name, done, event.at if event else None, _who(event)))
    if steps[2]["status"] == "done":
        steps[2]["detail"]["account_id"] = device.owner_id  # the account that holds it now
    activated_at = steps[4]["at"] if steps[4]["status"] == "done" else None

    first = _earliest(ordered, "first_contact")
    contacted = first is not None or device.last_contact is not None
    steps.append(_step("first_contact", contacted, first.at if first else None, _who(first) if contacted else None))

    redirect = _latest(ordered, "redirected")
    redirected = (redirect is not None or device.enrolled_at is not None) and device.activated
    redirect_at = redirect.at if redirect else device.enrolled_at
    if redirected and activated_at is not None and redirect_at is not None and redirect_at < activated_at:
        redirected = False  # delivered for its previous placement
    steps.append(_step("redirected", redirected, redirect_at, _who(redirect)))

    identity = _latest(ordered, "identity_issued")
    identity_at = identity.at if identity else device.identity_issued_at
    issued = identity_at is not None and device.activated
    if issued and activated_at is not None and identity_at is not None and identity_at < activated_at:
        issued = False
    steps.append(_step("identity_issued", issued, identity_at, _who(identity)))

    seen = [e.at for e in ordered if e.step in DEVICE_REQUESTS]
    if device.last_contact is not None:
        seen.append(device.last_contact)
    last = max(seen) if seen else None
    steps.append(_step("last_seen", last is not None, last, {}))

    stage = next(s["step"] for s in reversed(steps[:-1]) if s["status"] == "done")
    failures = [e.to_json() for e in ordered if e.step in FAILURES or not e.ok]
    return {
        "mac": device.mac,
        "stage": stage,
        "locked": bool(device.locked_until and device.locked_until > now),
        "steps": steps,
        "failures": failures[-HISTORY:],
        "history": [e.to_json() for e in ordered[-HISTORY:]],
        "history_complete": history_complete and len(ordered) <= HISTORY,
    }
