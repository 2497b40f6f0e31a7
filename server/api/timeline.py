"""Admin API: device status report-back (issue 16, S15) — one device's enrollment timeline, and the
fleet's status a QA lead watches during `enrollab fleet run` (counts by stage, latest changes).

Decisions:
- `GET /devices/{mac}/timeline` is scoped exactly as `GET /devices/{mac}`: action `devices.read`,
  the device looked up through `scope_devices` (ACC-7), a device outside the caller's view 404
  `device-not-found` like a missing one. The steps and where each comes from:
  `server.domain.timeline` (docs/decisions.md, "Device timeline (issue 16)").
- `GET /fleet/status` (action `devices.read`, the devices `GET /devices` shows): `counts` —
  the devices by timeline stage and locked now — and `changes`, the devices' recorded steps,
  oldest first, with `cursor`. A page polls with `after=<cursor>` for what happened since (the
  answer's `cursor` goes in the next poll; `more` true: ask again at once); without `after` it
  gets the latest `limit` changes. `since` (ISO 8601) keeps only changes at or after that time.
  `account_id` (that account of your subtree and its descendants, 404 outside it), `site_id`
  and `label` (a label name you see) narrow both. `counts=false` leaves the counts out (a page
  polling changes every second and counts less often).
- Cost (50,000 devices, `bench/fleet_status.py`): a poll reads the events after the cursor by
  primary key and their device rows by primary key; the counts are one GROUP BY pass over the
  scope's device rows (no counter table to drift), kept per scope for 2 s while events arrive and
  30 s when none do (`counted_at` says when; `server.store.timeline`); a timeline is three index
  look-ups on `ix_device_events_mac_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from server.api.devices.lifecycle import _missing
from server.api.devices.visibility import device_fields, scope_devices
from server.api.routing import Api, Req
from server.api.scope import account_in_scope
from server.domain import inputs
from server.domain.errors import bad_request
from server.domain.identity import normalize_mac
from server.domain.timeline import PATH, STAGES, STEPS
from server.store.models import Account, Device
from server.store.timeline import cached_stage_counts, device_timeline, fleet_changes, greatest_event_id

api = Api()

MAX_LIMIT, DEFAULT_LIMIT = 1000, 100

_TIME = {"type": ["string", "null"], "format": "date-time"}
_STEP = {
    "type": "object",
    "required": ["step", "status", "at", "detail"],
    "properties": {
        "step": {"enum": list(PATH)},
        "status": {"enum": ["done", "pending"]},
        "at": _TIME,
        "detail": {"type": "object"},
    },
}
_EVENT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "step": {"enum": sorted(STEPS)},
    "ok": {"type": "boolean"},
    "at": {"type": "string", "format": "date-time"},
    "login": {"type": ["string", "null"]},
    "account_id": {"type": ["string", "null"]},
    "detail": {"type": "object"},
}
_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "step", "ok", "at", "login", "account_id", "detail"],
    "properties": _EVENT_PROPERTIES,
}
TIMELINE = {
    "type": "object",
    "required": ["mac", "stage", "locked", "steps", "failures", "history", "history_complete"],
    "properties": {
        "mac": {"type": "string"},
        "stage": {"enum": list(STAGES)},
        "locked": {"type": "boolean"},
        "steps": {"type": "array", "items": _STEP},
        "failures": {"type": "array", "items": _EVENT},
        "history": {"type": "array", "items": _EVENT},
        "history_complete": {"type": "boolean"},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
FLEET = {
    "type": "object",
    "required": ["at", "scope", "changes", "cursor", "more"],
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "scope": {"type": "object"},
        "counts": {
            "type": "object",
            "required": ["total", "by_stage", "locked"],
            "properties": {
                "total": _COUNT,
                "by_stage": {"type": "object", "required": list(STAGES),
                             "properties": {name: _COUNT for name in STAGES}},
                "locked": _COUNT,
                "counted_at": {"type": "string", "format": "date-time",
                               "description": "when these counts were taken (kept up to 2 s; 30 s with no new event)"},
            },
        },
        "changes": {
            "type": "array",
            "items": {**_EVENT, "properties": {**_EVENT_PROPERTIES, "mac": {"type": "string"},
                                                "site_id": {"type": ["integer", "null"]},
                                                "owner_id": {"type": ["string", "null"]}}},
        },
        "cursor": {"type": "integer", "minimum": 0, "description": "pass as `after` in the next poll"},
        "more": {"type": "boolean", "description": "more changes after `cursor` than `limit`: poll again now"},
    },
}


@api.route(
    "GET",
    "/devices/{mac}/timeline",
    summary=(
        "One device's enrollment timeline from what the server saw (issue 16): imported, approved, claimed, "
        "associated, activated, first contact, redirect delivered (the profile URL), identity certificate "
        "issued, last seen — pending steps included — and the failures (wrong codes, lockout, refusals)"
    ),
    action="devices.read",
    process="DEVICE",
    tag="devices",
    answer=TIMELINE,
)
async def get_timeline(req: Req) -> Any:
    mac = normalize_mac(req.param("mac"))
    d = await req.session.scalar(scope_devices(select(Device), req.actor).where(Device.mac == mac))
    if d is None:
        raise _missing(mac)
    return await device_timeline(req.session, d, req.now)


@api.route(
    "GET",
    "/fleet/status",
    summary=(
        "What a fleet run is doing (issue 16): your devices by timeline stage and the latest recorded steps, "
        f"with a cursor to poll for what changed since (`after`); at most `limit` changes, 1..{MAX_LIMIT} "
        f"(default {DEFAULT_LIMIT})"
    ),
    action="devices.read",
    process="DEVICE",
    query=(
        ("after", "the `cursor` of the previous answer: only changes after it, oldest first"),
        ("since", "only changes at or after this time (ISO 8601 with a zone)"),
        ("account_id", "only the devices of this account of your subtree and its descendants"),
        ("site_id", "only the devices associated with this site"),
        ("label", "only the devices with this label (a label you see)"),
        ("counts", "false: leave the counts out"),
    ),
    answer=FLEET,
)
async def fleet_status(req: Req) -> Any:
    after = _int(req, "after", 0, inputs.ID_MAX)
    limit = _int(req, "limit", 1, MAX_LIMIT)
    since = _time(req.query("since"))
    with_counts = _flag(req.query("counts"))
    account: Account | None = None
    if req.query("account_id"):
        account = await account_in_scope(req.session, req.actor, str(req.query("account_id")))
    site_id = _int(req, "site_id", 0, inputs.ID_MAX)
    label = req.query("label")
    label_target: Any = device_fields(req.actor)["label"]  # DEV-11: a condition builder for labels
    label_condition = label_target("eq", label) if label else None

    def scope(stmt: Select[Any]) -> Select[Any]:
        stmt = scope_devices(stmt, req.actor)
        if account is not None:
            owners = select(Account.id).where(Account.path.startswith(account.path, autoescape=True))
            stmt = stmt.where(Device.owner_id.in_(owners))
        if site_id is not None:
            stmt = stmt.where(Device.site_id == site_id)
        if label_condition is not None:
            stmt = stmt.where(label_condition)
        return stmt

    top = await greatest_event_id(req.session)
    changes, cursor, more = await fleet_changes(
        req.session, scope, after=after, since=since, limit=limit if limit is not None else DEFAULT_LIMIT, top=top
    )
    answer: dict[str, Any] = {
        "at": req.now,
        "scope": {"account_id": account.id if account else None, "site_id": site_id, "label": label},
    }
    if with_counts:
        actor = req.actor
        key = (actor.role, actor.acting_id, account.id if account else None, site_id, label)
        answer["counts"] = await cached_stage_counts(req.ctx.store, req.session, key, scope, req.now, top)
    answer.update(changes=changes, cursor=cursor, more=more)
    return answer


def _int(req: Req, name: str, low: int, high: int) -> int | None:
    text = req.query(name)
    if text is None:
        return None
    number = inputs.ascii_int(text, low, high)
    if number is None:
        raise bad_request(f"invalid-{name.replace('_', '-')}", f"{name} is a whole number, {low}..{high}", text[:40])
    return number


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise bad_request("invalid-since", "since is an ISO 8601 time with a zone (2026-11-23T09:00:00Z)", text[:40])
    return when


def _flag(text: str | None) -> bool:
    if text is None or text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise bad_request("invalid-counts", "counts is true or false", text[:40])
