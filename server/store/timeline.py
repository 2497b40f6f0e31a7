"""Issue 16 (S15): recording a device's enrollment events (`device_events`) in the transaction of
each change, and reading them back — one device's timeline, the fleet's status and changes.

Decisions:
- Admin changes (approve, claim, associate, activate, release — by any call or job, any module)
  are recorded by one ORM `before_flush` hook on every session: it compares each changed
  `Device`'s `approved`, `owner_id`, `site_id`/`associated` and `activated` with their loaded
  values and adds a `DeviceEvent` per transition to the same flush, so the event commits (or rolls
  back) with the change. Who: the session's `info["actor"]` (set by `routing.execute` and the job
  runner), when: its `info["clock"]` (the server's clock). Core UPDATEs bypass the hook: the
  enrollment writer adds its own rows (`enrollment_events`), EST its own (`identity_event`).
- The enrollment hot path adds no statement per attempt: `enrollment_events` turns a decision into
  rows, and the group-commit batch inserts all its attempts' rows in ONE many-row INSERT next to
  the audit rows (`write_batch`). Rows only for a known device, and for an unverified request only
  when its certificate's CN is the device's MAC (a certificate naming other MACs writes nothing
  under them, as with failure notices). Last seen is the row's `last_contact`, written already.
- Imports write no event: `imported` is the row's `created_at` and `imported_by` (a 50,000-row
  import stays one INSERT); so imports are not in the fleet changes (`GET /fleet/status`).
- Reading one device: the latest event of each step, the first `first_contact` and the latest
  `HISTORY` events — three queries on `ix_device_events_mac_id` (mac, id), however long it lived.
- Fleet changes: `device_events.id > :after` in id order (the primary key; `after` is the cursor a
  poll got), joined to the device row and the caller's scope by primary keys: a poll reads the
  new rows only. Counts by stage: one GROUP BY over the scope's devices (`stage_of`), ~55 ms
  for 50,000 on SQLite — so not per poll: a count is kept per scope (the caller, `account_id`,
  `site_id`, `label`) and used again while it is younger than `COUNTS_FRESH` (2 s) or, when no
  event was recorded since, `COUNTS_QUIET` (30 s; imports and deletions write no event). Many
  pages polling every second cost one pass per scope per 2 s. Per server process.
- Cursor caveat (PostgreSQL): ids come from a sequence, so a transaction that commits after one
  with a higher id (two writers at once) can be missed by a poll that ran between. The page's
  counts never miss anything; `since` exists for a page that wants a time window instead.
"""

from __future__ import annotations

import base64
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import Table, and_, case, event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, attributes

from server.domain.audit import redact
from server.domain.enrollment.decision import REFUSALS, Decision
from server.domain.enrollment.facts import EnrollmentFacts
from server.domain.enrollment.finish import speaks_for_itself
from server.domain.timeline import HISTORY, STAGES, DeviceRow, Event, build_timeline
from server.store.db import Store
from server.store.models import Device, DeviceEvent

_events = cast(Table, DeviceEvent.__table__)
DETAIL_CHARS = 300


def _now(session: Session) -> datetime:
    clock = session.info.get("clock")
    return clock() if callable(clock) else datetime.now(UTC)


def _values(obj: Device, name: str) -> tuple[Any, Any, bool]:
    """(old, new, changed) of one attribute of a pending or dirty device."""
    hist = attributes.get_history(obj, name)
    if not hist.added:
        current = hist.unchanged[0] if hist.unchanged else None
        return current, current, False
    new = hist.added[0]
    old = hist.deleted[0] if hist.deleted else None
    return old, new, old != new


def device_transitions(obj: Device) -> list[tuple[str, dict[str, Any]]]:
    """The timeline steps a change of `obj` makes (step, columns of its event)."""
    out: list[tuple[str, dict[str, Any]]] = []
    old, new, changed = _values(obj, "approved")
    if changed and new and not old:
        out.append(("approved", {}))
    old_owner, owner, changed = _values(obj, "owner_id")
    if changed and owner is not None:
        out.append(("claimed", {"account_id": owner, "detail": {"previous_owner_id": old_owner}}))
    elif changed and old_owner is not None:
        out.append(("released", {"account_id": old_owner, "detail": {}}))
    was, associated, changed_assoc = _values(obj, "associated")
    _, site, changed_site = _values(obj, "site_id")
    if associated and site is not None and ((changed_assoc and not was) or changed_site):
        out.append(("associated", {"account_id": owner, "detail": {"site_id": site}}))
    was, active, changed = _values(obj, "activated")
    if changed and active and not was:
        out.append(("activated", {"account_id": owner}))
    return out


@event.listens_for(Session, "before_flush")
def _record_admin_transitions(session: Session, _flush_context: Any, _instances: Any) -> None:
    """The ORM hook (module docstring): one event per transition of a changed device."""
    devices = [obj for obj in (*session.new, *session.dirty) if isinstance(obj, Device)]
    if not devices:
        return
    at = _now(session)
    actor = session.info.get("actor")
    login = getattr(actor, "login", None) or None
    via = session.info.get("via") or ("admin" if login else "server")
    for obj in devices:
        for step, columns in device_transitions(obj):
            detail = {"via": via, **columns.get("detail", {})}
            session.add(
                DeviceEvent(
                    mac=obj.mac,
                    step=step,
                    ok=True,
                    at=at,
                    login=login,
                    account_id=columns.get("account_id") or getattr(actor, "acting_id", None) or None,
                    detail=detail,
                )
            )


# --- the enrollment hot path (rows for `write_batch`) ---------------------------------------------


def _row(mac: str, step: str, at: datetime, *, ok: bool = True, account_id: str | None = None,
         **detail: Any) -> dict[str, Any]:
    return {"mac": mac, "step": step, "ok": ok, "at": at, "login": None, "account_id": account_id,
            "detail": {k: v for k, v in detail.items() if v is not None}}


def _failure_step(decision: Decision) -> str:
    if decision.result == "code_invalid":
        return "wrong_code"
    if decision.result == "locked":
        return "refused_while_locked" if decision.audit.reason == "locked" else "lockout"
    return "enrollment_refused"


def enrollment_events(facts: EnrollmentFacts, decision: Decision, now: datetime) -> list[dict[str, Any]]:
    """The events one enrollment decision writes (module docstring); none for an unknown device."""
    device = facts.device
    if device is None:
        return []
    mac = device.mac
    verified = decision.device_updates is not None
    if not verified and not speaks_for_itself(facts):
        return []
    host = facts.request.client_host
    rows: list[dict[str, Any]] = []
    if verified and device.first_contact:
        rows.append(_row(mac, "first_contact", now, client_host=host, firmware=facts.request.firmware[:32]))
    updates = decision.device_updates
    claim = updates.claim if updates is not None else None
    if claim is not None:
        how = "enrollment-code"
        rows.append(_row(mac, "claimed", now, account_id=claim.owner_id, previous_owner_id=device.owner_id, via=how))
        rows.append(_row(mac, "associated", now, account_id=claim.owner_id, site_id=claim.site_id, via=how))
        rows.append(_row(mac, "activated", now, account_id=claim.owner_id, via=how))
    body, owner = decision.body, (claim.owner_id if claim is not None else device.owner_id)
    if decision.result == "redirect":
        provisioning = body.get("provisioning") or {}
        firmware = body.get("firmware") or {}
        rows.append(
            _row(
                mac,
                "redirected",
                now,
                account_id=owner,
                profile_url=redact(str(provisioning.get("url", "")))[:DETAIL_CHARS],
                server_type=provisioning.get("server_type"),
                group=provisioning.get("group"),
                site_id=claim.site_id if claim is not None else device.site_id,
                identity=bool(body.get("identity")),
                firmware=firmware.get("version") if isinstance(firmware, dict) else None,
                client_host=host,
            )
        )
    elif decision.result == "upgrade":
        firmware = body.get("firmware") or {}
        version = firmware.get("version") if isinstance(firmware, dict) else None
        rows.append(_row(mac, "firmware_upgrade", now, account_id=owner, version=version, client_host=host))
    elif decision.result == "code_required":
        rows.append(_row(mac, "code_requested", now, account_id=owner, client_host=host))
    elif decision.result in REFUSALS:
        detail = str(body.get("detail", decision.audit.message))[:DETAIL_CHARS]
        rows.append(
            _row(mac, _failure_step(decision), now, ok=False, account_id=owner, result=decision.result,
                 reason=decision.audit.reason, message=redact(detail), client_host=host,
                 retry_after=body.get("retry_after"))
        )
    return rows


def insert_event_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Many `enrollment_events` rows in one statement, in the caller's transaction."""
    if rows:
        conn.execute(insert(_events), list(rows))


# --- EST ------------------------------------------------------------------------------------------


def issued_certificate_detail(issued: bytes) -> dict[str, Any]:
    """Serial, expiry and subject of the certificate in an EST answer (base64 PKCS#7)."""
    try:
        (cert, *_) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(issued))
    except (ValueError, TypeError):
        return {}
    return {
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "subject": cert.subject.rfc4514_string()[:DETAIL_CHARS],
    }


def identity_event(
    session: AsyncSession, device: Device, at: datetime, *, issued: bytes | None, refusal: tuple[str, str] | None,
    client_host: str | None,
) -> None:
    """ENR-8: an identity certificate issued (with its serial and expiry) or refused, and the
    row's `identity_issued_at`, in EST's transaction."""
    if issued is not None:
        device.identity_issued_at = at
        detail: dict[str, Any] = {**issued_certificate_detail(issued), "client_host": client_host}
        session.add(DeviceEvent(mac=device.mac, step="identity_issued", ok=True, at=at,
                                account_id=device.owner_id, detail=detail))
    elif refusal is not None:
        error, why = refusal
        session.add(DeviceEvent(mac=device.mac, step="identity_refused", ok=False, at=at,
                                account_id=device.owner_id,
                                detail={"reason": error, "message": redact(why)[:DETAIL_CHARS],
                                        "client_host": client_host}))


# --- reading --------------------------------------------------------------------------------------


def _event(row: DeviceEvent) -> Event:
    return Event(id=row.id, step=row.step, at=row.at, ok=bool(row.ok), login=row.login,
                 account_id=row.account_id, detail=dict(row.detail or {}))


def device_row(d: Device) -> DeviceRow:
    return DeviceRow(
        mac=d.mac, created_at=d.created_at, imported_by=d.imported_by, approved=bool(d.approved),
        owner_id=d.owner_id, site_id=d.site_id, associated=bool(d.associated), activated=bool(d.activated),
        last_contact=d.last_contact, enrolled_at=d.enrolled_at, identity_issued_at=d.identity_issued_at,
        locked_until=d.locked_until,
    )


async def device_timeline(session: AsyncSession, device: Device, now: datetime) -> dict[str, Any]:
    """The timeline of one device (`server.domain.timeline.build_timeline`)."""
    mac = device.mac
    latest = select(func.max(DeviceEvent.id)).where(DeviceEvent.mac == mac).group_by(DeviceEvent.step)
    first_contact = (
        select(func.min(DeviceEvent.id)).where(DeviceEvent.mac == mac, DeviceEvent.step == "first_contact")
    ).scalar_subquery()
    wanted = select(DeviceEvent).where(
        DeviceEvent.mac == mac, DeviceEvent.id.in_(latest.union(select(first_contact)))
    )
    recent = select(DeviceEvent).where(DeviceEvent.mac == mac).order_by(DeviceEvent.id.desc()).limit(HISTORY + 1)
    rows = {r.id: r for r in await session.scalars(wanted)}
    recent_rows = list(await session.scalars(recent))
    complete = len(recent_rows) <= HISTORY
    for r in recent_rows[:HISTORY]:
        rows[r.id] = r
    return build_timeline(device_row(device), [_event(r) for r in rows.values()], now, history_complete=complete)


def stage_of() -> Any:
    """A device row's timeline stage (`server.domain.timeline.STAGES`), as SQL: the furthest step
    its columns say it reached."""
    return case(
        (Device.approved.is_(False), "imported"),
        (Device.owner_id.is_(None), "approved"),
        (and_(Device.associated.is_(False)), "claimed"),
        (Device.activated.is_(False), "associated"),
        (Device.last_contact.is_(None), "activated"),
        (Device.enrolled_at.is_(None), "first_contact"),
        (Device.identity_issued_at.is_(None), "redirected"),
        else_="identity_issued",
    )


async def stage_counts(
    session: AsyncSession, scope: Callable[[Any], Any], now: datetime
) -> dict[str, Any]:
    """Devices of the scope by stage, and locked now (one GROUP BY pass over the scope's rows).
    `scope(stmt)` restricts a statement on `devices`."""
    stage = stage_of()
    by_stage = dict.fromkeys(STAGES, 0)
    locked_now = func.sum(case((Device.locked_until > now, 1), else_=0))
    rows = await session.execute(
        scope(select(stage, func.count(), locked_now).select_from(Device)).group_by(stage)
    )
    locked = 0
    for name, count, locked_here in rows:
        by_stage[str(name)] = int(count)
        locked += int(locked_here or 0)
    return {"total": sum(by_stage.values()), "by_stage": by_stage, "locked": locked, "counted_at": now}


# Counts per scope, reused (module docstring): key -> (counted at, greatest event id then, counts).
COUNTS_FRESH = timedelta(seconds=2)  # a fleet run's pollers share one count per scope this long
COUNTS_QUIET = timedelta(seconds=30)  # with no new event: imports and deletions show within this
_Counts = OrderedDict[tuple[Any, ...], tuple[datetime, int, dict[str, Any]]]
_counts_of: weakref.WeakKeyDictionary[Store, _Counts] = weakref.WeakKeyDictionary()
_COUNTS_KEPT = 256


async def cached_stage_counts(
    store: Store, session: AsyncSession, key: tuple[Any, ...], scope: Callable[[Any], Any], now: datetime, top: int
) -> dict[str, Any]:
    """`stage_counts`, counted again only when the last count of `key` is older than
    `COUNTS_FRESH` and events were recorded since (`top`: the greatest event id now), or older
    than `COUNTS_QUIET`; so however many pages poll however often, a scope costs at most one
    pass over its devices every `COUNTS_FRESH`."""
    _counts = _counts_of.setdefault(store, OrderedDict())
    found = _counts.get(key)
    if found is not None:
        at, seen_top, counts = found
        age = now - at
        if timedelta(0) <= age < (COUNTS_QUIET if seen_top == top else COUNTS_FRESH):
            _counts.move_to_end(key)
            return counts
    counts = await stage_counts(session, scope, now)
    _counts[key] = (now, top, counts)
    _counts.move_to_end(key)
    while len(_counts) > _COUNTS_KEPT:
        _counts.popitem(last=False)
    return counts


async def greatest_event_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(DeviceEvent.id))) or 0)


RECENT_WINDOW = 20_000  # a first poll (no cursor) looks for its latest changes among the platform's latest events


async def fleet_changes(
    session: AsyncSession,
    scope: Callable[[Any], Any],
    *,
    after: int | None,
    since: datetime | None,
    limit: int,
    top: int | None = None,
) -> tuple[list[dict[str, Any]], int, bool]:
    """Events of the scope's devices, oldest first: with `after`, those with a greater id (a
    poll); without, the latest `limit` among the platform's latest `RECENT_WINDOW` events.
    Answers (changes, cursor, more): the cursor is the last id this read covered — the last change
    returned when `more`, else the greatest id there was — so out-of-scope events are read once."""
    top = await greatest_event_id(session) if top is None else top
    stmt = scope(
        select(DeviceEvent, Device.site_id, Device.owner_id).join(Device, Device.mac == DeviceEvent.mac)
    ).where(DeviceEvent.id <= top)
    if since is not None:
        stmt = stmt.where(DeviceEvent.at >= since)
    more = False
    if after is not None:
        stmt = stmt.where(DeviceEvent.id > after).order_by(DeviceEvent.id).limit(limit + 1)
        rows = list(await session.execute(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
    else:
        stmt = stmt.where(DeviceEvent.id > top - RECENT_WINDOW).order_by(DeviceEvent.id.desc()).limit(limit)
        rows = list(await session.execute(stmt))[::-1]
    changes = [
        {**_event(ev).to_json(), "mac": ev.mac, "site_id": site_id, "owner_id": owner_id}
        for ev, site_id, owner_id in rows
    ]
    cursor = changes[-1]["id"] if more else max(top, after or 0)
    return changes, cursor, more


def events_of(rows: Iterable[DeviceEvent]) -> list[Event]:
    return [_event(r) for r in rows]
