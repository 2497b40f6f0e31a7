"""Admin API: devices — import (DEV-1), approval (DEV-2), claim, association, activation,
disassociation, release (DEV-3..6), search (DEV-11, ACC-7) and export (DEV-10).

Decisions:
- An import runs in the request: the valid rows are inserted in one transaction together with
  a `Job` (kind `import`) that lists every refused row (file, row, field, reason). The job is
  COMPLETE when no row was refused and FAIL when any was — the valid rows are imported either
  way. A whole-file refusal (format, encoding, size, empty) raises and writes nothing.
- Imported devices are unapproved (DEV-2) and unclaimed; `imported_by` is the importing account.
- A lifecycle call on several MACs answers one result per MAC (`SUCCESS`, or `FAIL` with the
  rule's reason) and commits the successes as one transaction. When every MAC failed the call
  is refused as a whole (the error of the failures, the per-MAC results in `results`), so a
  single-device call reads like any other refused request and its FAIL lands in the log.
- ACC-7 scope of devices: the platform sees every device, a manufacturer the devices it
  imported, any other account the devices held by an account of its subtree. A device outside
  the scope answers `not-found`, exactly like a missing one. Claiming looks devices up
  globally: an unclaimed device belongs to no subtree yet.
- Labels in a search (`label` field) and in answers are those of accounts in the actor's subtree.
- Activating a device also lifts a code lockout (LCK-2). `POST /devices/unlock` lifts it without
  activating: the platform for any device (a device that types codes is unclaimed, so no partner
  holds it), a partner for devices its hierarchy holds; audited with the lock state it found.
- `POST /devices/associate` needs `devices.associate_site`; handing devices to another account
  (a child, a linked reseller) also needs `devices.associate`, so a customer associates with its
  own sites only.
- Notifications (NTF-1): one "Claiming Device" per call or job for the claimant, one
  "Associating Device" per receiving account and site, naming up to NOTIFY_MACS devices.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, Select, exists, func, insert, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.api.actor import Actor
from server.api.routing import Api, Reply, Req, dumps
from server.api.scope import account_in_scope, in_subtree, subtree_clause
from server.domain import claim_proof, imports, lockout, permissions
from server.domain import devices as rules
from server.domain.errors import DomainError, bad_request, not_found, too_many
from server.domain.identity import normalize_mac
from server.domain.notifications import NotificationKind
from server.domain.permissions import MANUFACTURER, PLATFORM
from server.domain.search import DEVICE_FIELDS, parse_filter
from server.store.links import is_linked
from server.store.models import Account, Device, DeviceLabel, Job, JobResult, Label, Site
from server.store.notify import queue_notification
from server.store.search import Target, condition, to_sql

api = Api()

CHUNK = 500  # MACs per IN (...) query: well under every backend's parameter limit
INLINE_ERRORS = 100  # refused import rows shown in the answer; the job holds them all
NOTIFY_MACS = 10  # MACs named in one notification; the rest are counted
EXPORT_FORMATS = ("json", "csv")
IMPORT_TYPES = (
    "application/json",
    "text/csv",
    "application/zip",
    "application/octet-stream",
    "text/plain",
    "application/vnd.ms-excel",
    "application/x-zip-compressed",
)

_MAC_ITEM = {"type": "string", "minLength": 1, "maxLength": 32}
MACS = {
    "type": "object",
    "required": ["macs"],
    "additionalProperties": False,
    "properties": {"macs": {"type": "array", "items": _MAC_ITEM, "minItems": 1, "maxItems": 10_000}},
}
_SERIAL = {"type": "string", "minLength": 1, "maxLength": 64}
_LABEL_CODE = {"type": "string", "minLength": 1, "maxLength": 64}
CLAIM = {
    "type": "object",
    "required": ["mac", "serial"],
    "additionalProperties": False,
    "properties": {"mac": _MAC_ITEM, "serial": _SERIAL, "label_code": _LABEL_CODE},
}
LABEL_CODES = {
    "type": "object",
    "required": ["codes"],
    "additionalProperties": False,
    "properties": {
        "codes": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "required": ["mac", "label_code"],
                "additionalProperties": False,
                "properties": {"mac": _MAC_ITEM, "label_code": _LABEL_CODE},
            },
        }
    },
}
TOO_MANY_CLAIMS = {
    "429": {
        "description": "too many claims with a wrong MAC, serial number or label code by this account: "
        "`too-many-attempts`",
        "headers": {
            "Retry-After": {
                "description": "seconds until the next claim is let through",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}
CLAIM_POLICY = {
    "type": "object",
    "required": ["label_code_required"],
    "additionalProperties": False,
    "properties": {"label_code_required": {"type": "boolean"}},
}
ASSOCIATE = {
    "type": "object",
    "required": ["macs", "account_id"],
    "additionalProperties": False,
    "properties": {
        "macs": MACS["properties"]["macs"],  # type: ignore[index]
        "account_id": {"type": "string", "pattern": "^[0-9]{8}$"},
        "site_id": {"type": ["integer", "null"], "minimum": 1},
    },
}

DEVICE_COLUMNS = (
    "mac",
    "serial",
    "model",
    "product_id",
    "hardware",
    "thumbprint",
    "manufactured_at",
    *imports.ORDER_FIELDS,
)
STATE_COLUMNS = (
    "approved",
    "owner_id",
    "site_id",
    "associated",
    "activated",
    "synced",
    "firmware",
    "imported_by",
    "enrolled_at",
    "last_contact",
    "created_at",
)


# --- presentation ---------------------------------------------------------------------------------


def device_json(d: Device, labels: Sequence[dict[str, Any]] = (), now: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {name: getattr(d, name) for name in (*DEVICE_COLUMNS, *STATE_COLUMNS)}
    body["locked"] = bool(d.locked_until and now and d.locked_until > now)
    body["zero_touch_ready"] = rules.zero_touch_ready(state_of(d))
    body["labels"] = list(labels)
    return body


def result(mac: str, error: DomainError | None = None) -> dict[str, Any]:
    """One device's outcome of a lifecycle call or job (DEV-10)."""
    if error is None:
        return {"mac": mac, "status": "SUCCESS"}
    out = {"mac": mac, "status": "FAIL", "reason": error.error, "detail": error.detail}
    if "action" in error.extra:
        out["action"] = error.extra["action"]
    return out


# --- ACC-7 scope ----------------------------------------------------------------------------------


def scope_devices(stmt: Select[Any], actor: Actor) -> Select[Any]:
    """ACC-7: restrict a query on `devices` to what the actor may see (see the module docstring)."""
    if actor.role == PLATFORM:
        return stmt
    if actor.role == MANUFACTURER:
        return stmt.where(Device.imported_by == actor.acting_id)
    return stmt.join(Account, Account.id == Device.owner_id).where(_subtree(actor, Account.path))


def label_scope(actor: Actor, label: Any = Label) -> ColumnElement[bool]:
    """ACC-7: the labels an actor sees — those of accounts in its subtree (the platform: all)."""
    owner = aliased(Account)
    return exists().where(owner.id == label.account_id, _subtree(actor, owner.path))


def _subtree(actor: Actor, path: Any) -> ColumnElement[bool]:
    # subtree_clause is typed for Core columns; mapped attributes are the same thing at run time.
    return subtree_clause(actor, path)


def _label_target(actor: Actor) -> Callable[[str, Any], ColumnElement[bool]]:
    """DEV-8, DEV-11: `label` conditions test the names of the device's visible labels."""

    def build(op: str, value: Any) -> ColumnElement[bool]:
        lab = aliased(Label)
        has = (
            select(DeviceLabel.mac)
            .join(lab, lab.id == DeviceLabel.label_id)
            .where(DeviceLabel.mac == Device.mac, label_scope(actor, lab))
            .correlate(Device)
        )
        if value is None:  # eq null: no label at all; ne null: some label
            return not_(has.exists()) if op == "eq" else has.exists()
        if op == "ne":  # "not labelled X", not "has some label other than X"
            return not_(has.where(lab.name == value).exists())
        name: Any = lab.name
        return has.where(condition(name, op, value)).exists()

    return build


def device_fields(actor: Actor) -> dict[str, Target]:
    """DEV-11: each searchable field and the column (or condition) it filters."""
    fields: dict[str, Target] = {name: getattr(Device, name) for name in DEVICE_FIELDS if name != "label"}
    fields["label"] = _label_target(actor)
    return fields


def device_filter(actor: Actor, q: str | None) -> ColumnElement[bool]:
    """DEV-11: the `q` filter of a device search as SQL."""
    return to_sql(parse_filter(q, DEVICE_FIELDS), device_fields(actor))


async def labels_of(session: AsyncSession, actor: Actor, macs: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The visible labels of the given devices, by MAC."""
    found: dict[str, list[dict[str, Any]]] = {}
    wanted = list(macs)
    for chunk in _chunks(wanted, CHUNK):
        rows = await session.execute(
            select(DeviceLabel.mac, Label.id, Label.name)
            .join(Label, Label.id == DeviceLabel.label_id)
            .where(DeviceLabel.mac.in_(chunk), label_scope(actor))
            .order_by(Label.name)
        )
        for mac, label_id, name in rows:
            found.setdefault(mac, []).append({"id": label_id, "name": name})
    return found


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalize_macs(values: Iterable[Any]) -> list[str]:
    """PROTOCOL §1: every MAC of a request in canonical form, duplicates dropped, order kept.

    One malformed MAC refuses the whole request (422 `invalid-mac`), before anything is done.
    """
    return list(dict.fromkeys(normalize_mac(v) for v in values))


# --- device state <-> row -------------------------------------------------------------------------


def state_of(d: Device) -> rules.DeviceState:
    return rules.DeviceState(
        mac=d.mac,
        serial=d.serial,
        model=d.model,
        approved=bool(d.approved),
        owner_id=d.owner_id,
        previous_owner_id=d.previous_owner_id,
        site_id=d.site_id,
        associated=bool(d.associated),
        activated=bool(d.activated),
        order={name: getattr(d, name) for name in rules.ORDER_FIELDS},
    )


def write_back(d: Device, after: rules.DeviceState, actions: Sequence[str]) -> None:
    """Store what a transition decided; side effects of particular actions ride along."""
    d.owner_id = after.owner_id
    d.previous_owner_id = after.previous_owner_id
    d.site_id = after.site_id
    d.associated = after.associated
    d.activated = after.activated
    for name in rules.ORDER_FIELDS:
        setattr(d, name, after.order.get(name))
    if "activate" in actions or "sync" in actions:
        lifted = lockout.after_activation()  # LCK-2: an administrator's activation lifts a lock
        d.failed_attempts, d.locked_until = lifted.failed, lifted.locked_until
    if "sync" in actions:
        d.synced = True  # ACO-1; the push itself is the cloud-office connector's business
    if "release" in actions or "disassociate" in actions:
        d.synced = False


async def parent_for_release(session: AsyncSession, actor: Actor) -> str | None:
    """DEV-5: where Release sends devices — the acting account's parent; a service provider's
    parent is the platform, which holds no devices, so they return to the unclaimed pool."""
    acc = await session.get(Account, actor.acting_id)
    if acc is None or acc.parent_id is None:
        return None
    parent = await session.get(Account, acc.parent_id)
    return None if parent is None or parent.type == PLATFORM else parent.id


async def action_context(
    session: AsyncSession,
    actor: Actor,
    actions: Sequence[str],
    account_id: str | None = None,
    site_id: int | None = None,
) -> rules.ActionContext:
    """Look up the facts the lifecycle rules need: the release parent and the association target.

    DEV-4, ACC-7, ACC-8: the target is the actor's own account, one of its subtree, or a reseller
    linked to it; any other account answers 404 like a missing one. A site must belong to the
    target account.
    """
    parent = await parent_for_release(session, actor) if "release" in actions else None
    if "associate" not in actions:
        return rules.ActionContext(actor_account_id=actor.acting_id, actor_parent_id=parent)
    target_id = account_id or actor.acting_id
    target = await session.get(Account, target_id)
    if target is None:
        raise not_found("account-not-found", f"no account {target_id} in your hierarchy or linked to you")
    inside = in_subtree(actor, target.path)
    linked: bool | None = None
    if target.type == "reseller" and target.id != actor.acting_id:
        linked = await is_linked(session, actor.acting_id, target.id)
    if not inside and not linked:
        raise not_found("account-not-found", f"no account {target_id} in your hierarchy or linked to you")
    has_profile: bool | None = None
    if site_id is not None:
        site = await session.get(Site, site_id)
        if site is None or site.account_id != target.id:
            raise not_found("site-not-found", f"account {target.id} has no site {site_id}")
        has_profile = site.profile_id is not None
    return rules.ActionContext(
        actor_account_id=actor.acting_id,
        actor_parent_id=parent,
        target_account_id=target.id,
        target_is_child=inside and target.id != actor.acting_id,
        target_is_linked_reseller=linked,
        site_id=site_id,
        site_has_profile=has_profile,
    )


def apply_actions(
    d: Device, actions: Sequence[str], ctx: rules.ActionContext
) -> tuple[rules.DeviceState, DomainError | None]:
    """Run a DEV-9 action set on one device row; on success the row holds the new state."""
    before = state_of(d)
    try:
        after = rules.run_actions(before, actions, ctx)
    except DomainError as err:
        return before, err
    write_back(d, after, actions)
    return after, None


# --- notifications (NTF-1) ------------------------------------------------------------------------


class Notices:
    """Collects claimed/associated devices per account and queues one notification each.

    One email per call or job and account, naming up to NOTIFY_MACS devices: a 50 000-device job
    must not queue 50 000 emails.
    """

    def __init__(self) -> None:
        self.claimed: dict[str, list[tuple[str, str, str]]] = {}
        self.associated: dict[tuple[str, int | None], list[tuple[str, str, str]]] = {}
        self.counts: dict[tuple[str, str, int | None], int] = {}

    def add(self, before: rules.DeviceState, after: rules.DeviceState, actions: Sequence[str], actor_id: str) -> None:
        """Note what one device's successful actions mean for the notifications."""
        dev = (after.mac, after.model, after.serial)
        if before.owner_id is None and after.owner_id is not None and {"claim", "sync"} & set(actions):
            self._keep(self.claimed.setdefault(actor_id, []), ("claim", actor_id, None), dev)
        moved = after.owner_id != before.owner_id or after.site_id != before.site_id
        if "associate" in actions and after.owner_id is not None and moved:
            key = (after.owner_id, after.site_id)
            self._keep(self.associated.setdefault(key, []), ("associate", *key), dev)

    def _keep(
        self, bucket: list[tuple[str, str, str]], key: tuple[str, str, int | None], dev: tuple[str, str, str]
    ) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(bucket) < NOTIFY_MACS:
            bucket.append(dev)

    async def queue(self, session: AsyncSession, actor_login: str, at: datetime) -> None:
        for account_id, devs in self.claimed.items():
            total = self.counts[("claim", account_id, None)]
            await queue_notification(
                session,
                account_id,
                NotificationKind.CLAIMING_DEVICE.value,
                facts={
                    **_device_facts(devs, total),
                    "account": account_id,
                    "changed_by": actor_login,
                    "at": at.isoformat(),
                },
            )
        for (account_id, site_id), devs in self.associated.items():
            total = self.counts[("associate", account_id, site_id)]
            await queue_notification(
                session,
                account_id,
                NotificationKind.ASSOCIATING_DEVICE.value,
                facts={
                    **_device_facts(devs, total),
                    "account": account_id,
                    "site": site_id if site_id is not None else "(none)",
                    "changed_by": actor_login,
                    "at": at.isoformat(),
                },
            )


def _device_facts(devs: list[tuple[str, str, str]], total: int) -> dict[str, str]:
    if total == 1:
        mac, model, serial = devs[0]
        return {"mac": mac, "model": model, "serial": serial}
    named = ", ".join(mac for mac, _, _ in devs)
    more = f" and {total - len(devs)} more" if total > len(devs) else ""
    models = sorted({model for _, model, _ in devs})
    return {
        "mac": f"{total} devices: {named}{more}",
        "model": models[0] if len(models) == 1 and not more else "various",
        "serial": "various",
    }


# --- lifecycle calls ------------------------------------------------------------------------------


async def _load(session: AsyncSession, actor: Actor | None, macs: Sequence[str]) -> dict[str, Device]:
    """The devices with these MACs (within the actor's scope unless `actor` is None), row-locked."""
    found: dict[str, Device] = {}
    for chunk in _chunks(list(macs), CHUNK):
        stmt = select(Device).where(Device.mac.in_(chunk))
        if actor is not None:
            stmt = scope_devices(stmt, actor)
        for d in await session.scalars(stmt.with_for_update(of=Device)):
            found[d.mac] = d
    return found


def _missing(mac: str) -> DomainError:
    return not_found("device-not-found", f"no device {mac} in your hierarchy")


async def run_lifecycle(
    req: Req, macs: Sequence[str], actions: Sequence[str], ctx: rules.ActionContext, *, scoped: bool = True
) -> dict[str, Any]:
    """Apply `actions` to each MAC in this request's transaction; answer per-MAC results.

    Refuses the call as a whole when no device changed (see the module docstring).
    """
    rules.authorize_actions(req.actor.role, rules.validate_action_set(actions))
    rows = await _load(req.session, req.actor if scoped else None, macs)
    notices = Notices()
    results: list[dict[str, Any]] = []
    failures: list[DomainError] = []
    for mac in macs:
        row = rows.get(mac)
        if row is None:
            err: DomainError | None = _missing(mac)
        else:
            before = state_of(row)
            after, err = apply_actions(row, actions, ctx)
            if err is None:
                notices.add(before, after, actions, req.actor.acting_id)
        results.append(result(mac, err))
        if err is not None:
            failures.append(err)
    succeeded = len(results) - len(failures)
    if succeeded == 0:
        raise all_failed(failures, results)
    await notices.queue(req.session, req.actor.login, req.now)
    req.audit_message = f"{'+'.join(actions)}: {succeeded} of {len(results)} devices" + (
        f" ({', '.join(macs[:5])}{', ...' if len(macs) > 5 else ''})"
    )
    return {"results": results, "summary": {"succeeded": succeeded, "failed": len(failures)}}


def all_failed(failures: list[DomainError], results: list[dict[str, Any]]) -> DomainError:
    first = failures[0]
    if len(failures) == 1 or all(f.error == first.error for f in failures):
        detail = first.detail if len(failures) == 1 else f"{first.detail} (all {len(failures)} devices)"
        return DomainError(first.error, detail, first.status, first.value, {"results": results})
    return DomainError(
        "no-device-changed",
        f"None of the {len(failures)} devices could be changed; see results.",
        409,
        None,
        {"results": results},
    )


# --- routes: import and approval ------------------------------------------------------------------


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "kind": job.kind,
        "actions": job.actions,
        "status": job.status,
        "summary": job.summary,
        "account_id": job.account_id,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


_LENGTHS = {
    name: length
    for name in DEVICE_COLUMNS
    if (length := getattr(Device.__table__.columns[name].type, "length", None)) is not None
}


def _too_long(rows: list[imports.DeviceRow]) -> tuple[list[imports.DeviceRow], list[imports.RowError]]:
    """DEV-1: a value longer than the store keeps is a row error, not a database failure.

    The import schema allows up to 128 characters for free text (32 for a model); the store's
    columns are narrower, and PostgreSQL would refuse the whole insert.
    """
    kept: list[imports.DeviceRow] = []
    errors: list[imports.RowError] = []
    for row in rows:
        bad = [
            imports.RowError(
                row.file,
                row.row,
                name,
                "too-long",
                f"The field {name!r} is longer than {limit} characters.",
                value[:80],
            )
            for name, limit in _LENGTHS.items()
            if isinstance(value := getattr(row, name), str) and len(value) > limit
        ]
        if bad:
            errors.extend(bad)
        else:
            kept.append(row)
    return kept, errors


async def _existing(session: AsyncSession, rows: list[imports.DeviceRow]) -> tuple[set[str], set[str]]:
    """The MACs and serial numbers of the file that the store already holds (only those)."""
    macs: set[str] = set()
    serials: set[str] = set()
    for chunk in _chunks([r.mac for r in rows], CHUNK):
        macs.update(await session.scalars(select(Device.mac).where(Device.mac.in_(chunk))))
    for chunk in _chunks([r.serial for r in rows], CHUNK):
        serials.update(await session.scalars(select(Device.serial).where(Device.serial.in_(chunk))))
    return macs, serials


def _error_order(parsed: imports.ImportParse) -> Callable[[imports.RowError], tuple[int, int]]:
    files: dict[str | None, int] = {}
    for where in [r.file for r in parsed.rows] + [e.file for e in parsed.errors]:
        files.setdefault(where, len(files))
    return lambda e: (files.get(e.file, len(files)), e.row)


def _subject(e: imports.RowError) -> str:
    where = f"{e.file}:{e.row}" if e.file else f"row {e.row}"
    return where if len(where) <= 64 else "…" + where[-63:]


async def _whole_body(req: Req) -> bytes:
    """The whole upload, even when the framework's single `read(n)` returned only its first part.

    `StreamReader.read(n)` answers what has arrived, up to n bytes; a large upload arrives in
    several chunks, so the rest is read here, within the same size limit.
    """
    parts = [req.raw or b""]
    size = len(parts[0])
    while chunk := await req.request.content.read(64 * 1024):
        size += len(chunk)
        imports.check_size(size, imports.MAX_BYTES)
        parts.append(chunk)
    return b"".join(parts)


@api.route(
    "POST",
    "/devices/import",
    summary="Import devices from JSON, CSV or a ZIP of those (DEV-1); answers the import job",
    action="devices.import",
    process="DEVICE",
    raw_body=IMPORT_TYPES,
    max_body=imports.MAX_BYTES,
    status=201,
    query=(("filename", "the file's name (a hint for the format)"), ("name", "job name")),
)
async def import_devices(req: Req) -> Any:
    data = await _whole_body(req)
    filename = req.query("filename")
    # Parsing a 10 MiB file takes a while: off the event loop, so other requests are served meanwhile.
    parsed = await asyncio.to_thread(
        imports.parse_import, data, filename=filename, content_type=req.request.headers.get("Content-Type")
    )
    rows, long_errors = _too_long(parsed.rows)
    macs, serials = await _existing(req.session, rows)
    rows, duplicate_errors = imports.mark_existing(rows, macs, serials)
    errors = sorted([*parsed.errors, *long_errors, *duplicate_errors], key=_error_order(parsed))
    now = req.now
    for chunk in _chunks(rows, 1000):
        await req.session.execute(
            insert(Device),
            [
                {
                    **{name: getattr(r, name) for name in DEVICE_COLUMNS},
                    "approved": False,
                    "imported_by": req.actor.acting_id,
                    "created_at": now,
                }
                for r in chunk
            ],
        )
    rejected_rows = len({(e.file, e.row) for e in errors})
    job = Job(
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        name=(req.query("name") or f"import {filename or parsed.format}")[:128],
        kind="import",
        actions=["import"],
        params={"filename": filename, "format": parsed.format},
        status="FAIL" if errors else "COMPLETE",
        summary={"imported": len(rows), "rejected": rejected_rows, "errors": len(errors)},
        created_at=now,
        finished_at=now,
    )
    req.session.add(job)
    await req.session.flush()
    for chunk in _chunks(errors, 1000):
        await req.session.execute(
            insert(JobResult),
            [
                {
                    "job_id": job.id,
                    "subject": _subject(e),
                    "file": e.file[:256] if e.file else None,
                    "row": e.row,
                    "field": e.field,
                    "status": "FAIL",
                    "reason": e.reason[:64],
                    "detail": e.detail + (f" Value: {e.value}" if e.value is not None else ""),
                }
                for e in chunk
            ],
        )
    req.audit_message = f"import job {job.id}: {len(rows)} devices imported, {rejected_rows} rows rejected"
    body = job_json(job)
    body["errors"] = [e.to_json() for e in errors[:INLINE_ERRORS]]
    body["errors_complete"] = len(errors) <= INLINE_ERRORS
    if len(rows) >= 1000:
        req.after_commit.append(lambda: req.ctx.store.refresh_statistics("devices"))
    return Reply(body, 201)


@api.route(
    "POST",
    "/devices/approve",
    summary="Approve imported devices (DEV-2; platform only)",
    action="devices.approve",
    process="DEVICE",
    body=MACS,
)
async def approve_devices(req: Req) -> Any:
    macs = normalize_macs(req.body["macs"])
    rows = await _load(req.session, None, macs)
    results = []
    for mac in macs:
        row = rows.get(mac)
        if row is None:
            results.append(result(mac, not_found("device-not-found", f"no imported device {mac}")))
            continue
        row.approved = True  # approving twice is harmless: the device is approved either way
        results.append(result(mac))
    failed = sum(r["status"] == "FAIL" for r in results)
    if failed == len(results):
        raise all_failed([not_found("device-not-found", "no such imported device")] * failed, results)
    req.audit_message = f"approved {len(results) - failed} devices"
    return {"results": results, "summary": {"succeeded": len(results) - failed, "failed": failed}}


# --- routes: search, export, read -----------------------------------------------------------------


@api.route(
    "GET",
    "/devices",
    summary="Search devices (DEV-11 filter in q); your hierarchy's only (ACC-7)",
    action="devices.read",
    process="DEVICE",
    query=(("q", 'filter JSON: {"all"|"any": [{"field","op","value"}]}'),),
)
async def list_devices(req: Req) -> Any:
    limit, offset = req.page()
    where = device_filter(req.actor, req.query("q"))
    total = await req.session.scalar(scope_devices(select(func.count()).select_from(Device), req.actor).where(where))
    rows = list(
        await req.session.scalars(
            scope_devices(select(Device), req.actor).where(where).order_by(Device.mac).limit(limit).offset(offset)
        )
    )
    labels = await labels_of(req.session, req.actor, [d.mac for d in rows])
    return {"items": [device_json(d, labels.get(d.mac, []), req.now) for d in rows], "total": total}


EXPORT_FIELDS = (*DEVICE_COLUMNS, *STATE_COLUMNS, "labels")


@api.route(
    "GET",
    "/devices/export",
    summary="Export the devices a filter selects as JSON or CSV (DEV-10, DEV-11)",
    action="devices.read",
    process="DEVICE",
    query=(("format", "json (default) or csv"), ("q", "filter JSON, as for GET /devices")),
)
async def export_devices(req: Req) -> Any:
    fmt = _export_format(req)
    where = device_filter(req.actor, req.query("q"))
    # Written page by page as text: a 100 000-device export never holds every row as objects.
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_FIELDS), extrasaction="ignore", lineterminator="\n")
    if fmt == "json":
        out.write('{"devices": [')
    else:
        writer.writeheader()
    after, first = "", True
    while True:  # keyset pages: each query stays small however large the fleet
        page = list(
            await req.session.scalars(
                scope_devices(select(Device), req.actor)
                .where(where, Device.mac > after)
                .order_by(Device.mac)
                .limit(CHUNK)
            )
        )
        if not page:
            break
        labels = await labels_of(req.session, req.actor, [d.mac for d in page])
        for d in page:
            item = device_json(d, labels.get(d.mac, []), req.now)
            if fmt == "json":
                out.write(("" if first else ",") + dumps(item))
            else:
                item["labels"] = ";".join(label["name"] for label in item["labels"])
                writer.writerow({k: _cell(item.get(k)) for k in EXPORT_FIELDS})
            first = False
        after = page[-1].mac
    if fmt == "json":
        out.write("]}")
        return export_response(out.getvalue(), "devices.json", "application/json")
    return export_response(out.getvalue(), "devices.csv", "text/csv")


def _export_format(req: Req) -> str:
    fmt = (req.query("format") or "json").lower()
    if fmt not in EXPORT_FORMATS:
        raise bad_request("invalid-format", "format must be json or csv", fmt)
    return fmt


def to_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A CSV document (stdlib csv) with a header row; datetimes in ISO 8601, None as empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def export_response(text: str, filename: str, content_type: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@api.route(
    "GET",
    "/devices/{mac}",
    summary="Read one device (MAC in any PROTOCOL §1 form)",
    action="devices.read",
    process="DEVICE",
)
async def get_device(req: Req) -> Any:
    mac = normalize_mac(req.param("mac"))
    d = await req.session.scalar(scope_devices(select(Device), req.actor).where(Device.mac == mac))
    if d is None:
        raise _missing(mac)
    labels = await labels_of(req.session, req.actor, [mac])
    return device_json(d, labels.get(mac, []), req.now)


# --- routes: lifecycle ----------------------------------------------------------------------------


@api.route(
    "POST",
    "/devices/claim",
    summary=(
        "Claim a device by its MAC and the serial number printed on its box (DEV-3), and its label "
        "code where it has one or your account requires one; a wrong combination answers like an "
        "unknown device (404 device-not-found) and counts toward your account's failure budget "
        "(429 too-many-attempts with Retry-After)"
    ),
    action="devices.claim",
    process="DEVICE",
    body=CLAIM,
    responses=TOO_MANY_CLAIMS,
)
async def claim_device(req: Req) -> Any:
    mac = normalize_mac(req.body["mac"])
    serial = req.body["serial"]
    label_code = req.body.get("label_code")
    if label_code is not None:
        label_code = claim_proof.normalize_label_code(label_code)
    claimant = req.actor.acting_id
    wait = req.ctx.claims.retry_after(claimant, req.now)
    if wait is not None:  # before any look-up: a spent budget tells nothing about the device
        raise too_many(
            "too-many-attempts",
            f"Too many claims with a wrong MAC, serial number or label code; try again in {wait} s.",
            wait,
        )
    code_required = await _label_code_required(req.session, claimant)
    if code_required and label_code is None:
        raise claim_proof.label_code_required()
    # One statement whatever the answer: the rows with this MAC or this serial (0, 1 or 2).
    found = list(await req.session.scalars(select(Device).where(or_(Device.mac == mac, Device.serial == serial))))
    device = next((d for d in found if d.mac == mac), None)
    proven = claim_proof.matches(
        mac,
        serial,
        label_code,
        device.mac if device else None,
        device.serial if device else None,
        device.label_code_hash if device else None,
        code_required,
    )
    if not proven or device is None:
        req.ctx.claims.record(claimant, req.now)
        raise claim_proof.no_match(mac, serial)
    ctx = await action_context(req.session, req.actor, ["claim"])
    answer = await run_lifecycle(req, [device.mac], ["claim"], ctx, scoped=False)
    answer["device"] = device_json(device, [], req.now)
    return answer


async def _label_code_required(session: AsyncSession, account_id: str) -> bool:
    """DEV-3: does this account, or an account above it, require label codes for its claims?"""
    account = await session.get(Account, account_id)
    if account is None:
        return False
    ids = [part for part in account.path.split("/") if part]
    required = await session.scalar(
        select(func.count()).select_from(Account).where(Account.id.in_(ids), Account.label_code_required.is_(True))
    )
    return bool(required)


@api.route(
    "POST",
    "/devices/label-codes",
    summary=(
        "Add label codes to devices you imported (DEV-3 claim proof; manufacturer or platform): "
        "each device is then claimed only with its label code; kept as a hash, never shown"
    ),
    action="devices.label_codes",
    process="DEVICE",
    body=LABEL_CODES,
)
async def set_label_codes(req: Req) -> Any:
    given: dict[str, str] = {}
    for item in req.body["codes"]:
        given[normalize_mac(item["mac"])] = claim_proof.normalize_label_code(item["label_code"])
    rows = await _load(req.session, req.actor, list(given))
    results = []
    for mac, code in given.items():
        row = rows.get(mac)
        if row is None:
            results.append(result(mac, _missing(mac)))
            continue
        row.label_code_hash = claim_proof.label_code_hash(mac, code)
        results.append(result(mac))
    failed = sum(r["status"] == "FAIL" for r in results)
    if failed == len(results):
        raise all_failed([_missing(r["mac"]) for r in results], results)
    req.audit_message = f"label codes set for {len(results) - failed} devices"
    return {"results": results, "summary": {"succeeded": len(results) - failed, "failed": failed}}


@api.route(
    "GET",
    "/accounts/{id}/claim-policy",
    summary="An account's claim policy (DEV-3): does it, or an account above it, require label codes in claims",
    action="accounts.read",
    process="ACCOUNT",
)
async def get_claim_policy(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    return await _claim_policy_json(req.session, acc)


@api.route(
    "PUT",
    "/accounts/{id}/claim-policy",
    summary="Require a label code in every claim of this account and its subtree (DEV-3; off by default)",
    action="accounts.claim_policy",
    process="ACCOUNT",
    body=CLAIM_POLICY,
)
async def set_claim_policy(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    acc.label_code_required = req.body["label_code_required"]
    req.audit_account = acc.id
    req.audit_message = f"label codes {'required' if acc.label_code_required else 'not required'} in claims of {acc.id}"
    await req.session.flush()
    return await _claim_policy_json(req.session, acc)


async def _claim_policy_json(session: AsyncSession, acc: Account) -> dict[str, Any]:
    return {
        "account_id": acc.id,
        "label_code_required": bool(acc.label_code_required),
        "effective": await _label_code_required(session, acc.id),
    }


@api.route(
    "POST",
    "/devices/associate",
    summary="Associate devices with a linked reseller, or a child account and its site (DEV-4)",
    action="devices.associate_site",
    process="DEVICE",
    body=ASSOCIATE,
)
async def associate_devices(req: Req) -> Any:
    macs = normalize_macs(req.body["macs"])
    target = req.body["account_id"]
    # A customer associates devices with its own sites only; handing devices to another account
    # (a reseller, a child) is the `devices.associate` permission of providers and resellers.
    if target != req.actor.acting_id and not permissions.allowed(req.actor.role, "devices.associate"):
        permissions.check(req.actor.role, "devices.associate")
    ctx = await action_context(req.session, req.actor, ["associate"], target, req.body.get("site_id"))
    return await run_lifecycle(req, macs, ["associate"], ctx)


async def _simple(req: Req, action: str) -> Any:
    macs = normalize_macs(req.body["macs"])
    ctx = await action_context(req.session, req.actor, [action])
    return await run_lifecycle(req, macs, [action], ctx)


@api.route(
    "POST",
    "/devices/activate",
    summary="Activate devices; after association for zero-touch (DEV-6, LCK-2)",
    action="devices.activate",
    process="DEVICE",
    body=MACS,
)
async def activate_devices(req: Req) -> Any:
    return await _simple(req, "activate")


@api.route(
    "POST",
    "/devices/deactivate",
    summary="Deactivate devices: codes only from then on (DEV-6, DEV-7)",
    action="devices.activate",
    process="DEVICE",
    body=MACS,
)
async def deactivate_devices(req: Req) -> Any:
    return await _simple(req, "deactivate")


@api.route(
    "POST",
    "/devices/disassociate",
    summary="Take devices back from a child account; erases the order fields (DEV-5)",
    action="devices.disassociate",
    process="DEVICE",
    body=MACS,
)
async def disassociate_devices(req: Req) -> Any:
    return await _simple(req, "disassociate")


@api.route(
    "POST",
    "/devices/release",
    summary="Return devices to the parent account; erases the order fields (DEV-5)",
    action="devices.release",
    process="DEVICE",
    body=MACS,
)
async def release_devices(req: Req) -> Any:
    return await _simple(req, "release")


@api.route(
    "POST",
    "/devices/unlock",
    summary=(
        "Lift the code lockout of devices (LCK-2): the platform for any device, claimed or not; "
        "an account for devices its hierarchy holds (ACC-7). Resets the wrong-code count; "
        "per-device results with the lock state each one had"
    ),
    action="devices.unlock",
    process="DEVICE",
    body=MACS,
)
async def unlock_devices(req: Req) -> Any:
    macs = normalize_macs(req.body["macs"])
    rows = await _load(req.session, req.actor, macs)
    now = req.now
    results: list[dict[str, Any]] = []
    lifted: list[str] = []
    for mac in macs:
        row = rows.get(mac)
        if row is None:
            results.append(result(mac, _missing(mac)))
            continue
        was = lockout.describe(lockout.LockState(row.failed_attempts or 0, row.locked_until), now)
        cleared = lockout.after_unlock()
        row.failed_attempts, row.locked_until = cleared.failed, cleared.locked_until
        results.append({**result(mac), "was": was})
        lifted.append(f"{mac} ({_lock_words(was)})")
    failed = len(results) - len(lifted)
    if not lifted:
        raise all_failed([_missing(r["mac"]) for r in results], results)
    req.audit_message = f"unlock: {len(lifted)} of {len(results)} devices: " + ", ".join(lifted[:5]) + (
        f", and {len(lifted) - 5} more" if len(lifted) > 5 else ""
    )
    return {"results": results, "summary": {"succeeded": len(lifted), "failed": failed}}


def _lock_words(was: dict[str, Any]) -> str:
    """The lock state an unlock found, for its audit entry (LOG-1)."""
    if was["locked"]:
        return f"locked until {was['locked_until'].isoformat()} after {was['failed_attempts']} wrong codes"
    return f"not locked, {was['failed_attempts']} wrong codes counted"


def context_json(ctx: rules.ActionContext) -> dict[str, Any]:
    """An ActionContext as a job keeps it (jobs run later, in the background)."""
    return asdict(ctx)
