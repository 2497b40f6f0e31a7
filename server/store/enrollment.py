"""The store's side of a device's enrollment (PROTOCOL §2): the facts `decide_enrollment` needs,
and writing its `Decision` (ENR-5, EC-3, EC-7, LCK-2, LCK-3).

`server.domain.enrollment.decide` decides; this module looks things up and writes. The caller
runs `load_facts` (a read snapshot) -> `decide_enrollment` -> `apply_decision` and, when
`apply_decision` raises `LostRace`, does it all again with fresh facts.

Decisions:
- Look-ups are SQLAlchemy Core statements built once: one joined SELECT gives the device with
  its owner account, site, the site's account, profile and firmware setting; a typed code
  adds one more (NEC with its site, or the PEC's account with the site of that PIN), on the
  same SQLite snapshot. A lone statement needs no BEGIN. Reads are plans run by `Store.run_plan`
  (a worker thread on SQLite, the asyncpg connection itself on PostgreSQL); writes are plain
  functions of a Core connection run by `Store.run_write`.
- EC-3: an NEC is counted with `UPDATE enrollment_codes SET enrolled = enrolled + 1 WHERE
  site_id = :site AND code = :code AND enrolled < total_devices AND (expires_at IS NULL OR
  expires_at > :now)`; no row -> `LostRace` (the code was used up, expired or regenerated
  meanwhile), and the decision taken again answers `code_invalid`.
- LCK-3: a counted wrong code is written `WHERE failed_attempts = :expected_failed`; no row ->
  `LostRace`, so two concurrent wrong codes never both count from the same value.
- EC-7: a claim is written only while the device still is as the facts saw it (owner, site,
  associated, activated): the same device sending the right code twice at once is claimed,
  and its NEC counted, once.
- Group commit: attempts queue on the store's `EnrollmentWriter`, and one task writes all that
  have queued in ONE transaction, then answers each. Inside it every attempt keeps its own
  statements and conditions, applied one after the other, which is a serial order: an attempt
  that loses a race writes nothing (its code count is undone with a savepoint when its device
  row then fails), learns `LostRace` and is decided again. Device rows that are written
  whatever their state (last contact, firmware, `enrolled_at`) go as one many-row UPDATE; a
  device deleted meanwhile loses the race as before. Audit entries, notifications and timeline
  events (issue 16, `server.store.timeline`) go as one many-row INSERT each (a failure notice
  only when `ServerContext.failure_notices` admits it, released again when the attempt is not
  written). The write lock (SQLite) and the commit are paid once per batch, not once per
  attempt; nobody is answered before the commit.
- Writes go code rows first, then device rows, in every transaction, so two enrollments never
  wait for each other in opposite orders (PostgreSQL deadlocks; a batch's many-row UPDATE goes
  in MAC order). A deadlock or serialization failure fails the batch, which is then written
  again one attempt per transaction; those errors are retried by the caller.
- SQLite runs every write transaction with BEGIN IMMEDIATE (`server.store.db`), so there races
  cannot happen inside one; on PostgreSQL (READ COMMITTED) the conditional UPDATEs wait for the
  row and re-check their WHERE on the committed value, which is what makes them exact.
- ENR-5: the audit entry (process ENROLLMENT, action `enroll`) carries the client host in its
  column and, in its message, the MAC, the certificate subject, the result and the reason id:
  `A4251B0C3D5E [O=...,CN=A4251B0C3D5E] code_invalid (wrong-code): J179 4.1.11.0.9: ...`.
  It is filed under the account the decision names (the device owner, or the code's
  account), so that account's administrators see it (LOG-1); unknown devices only the platform.
  The account's path comes from the facts' look-up (paths never change).
- DES (ENR-6): a profile entry of server type DES names this server as the provisioning
  server (the guide: enter `https://des.avaya.com` and pick DES). The device is sent where this
  server really serves the site's files, `<device_url>/device/v1/files/`, not the URL typed
  in the entry; the ENR-4 checks run on that URL (a Vantage needs a host name there, so
  start the server with `--hostname`).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from server.context import ServerContext
from server.domain.codes import Expiry, ExpiryUnit, NecState, classify_code, split_pec
from server.domain.devices import DeviceState, zero_touch_ready
from server.domain.enrollment.decision import CodeConsumption, Decision, DeviceUpdates
from server.domain.enrollment.facts import (
    AccountFacts,
    Capabilities,
    CertificateFacts,
    CodeMatch,
    DeviceRecord,
    EnrollmentFacts,
    FirmwareImages,
    RequestFacts,
    SiteFacts,
)
from server.domain.errors import DomainError
from server.domain.failure_notices import Admitted
from server.domain.firmware import Catalog
from server.domain.identity import normalize_mac
from server.domain.lockout import LockoutPolicy
from server.domain.notifications import NotificationKind
from server.domain.profiles import ProfileEntry, ServerType
from server.pki.keys import normalize_thumbprint
from server.store.audit import audit_values, insert_audit_rows
from server.store.db import CompiledSelect, ReadPlan, Store
from server.store.models import (
    Account,
    DeniedCertificate,
    Device,
    DeviceFamily,
    EnrollmentCode,
    Profile,
    Site,
    SiteFirmware,
)
from server.store.notify import PendingNotice, queue_notifications
from server.store.timeline import enrollment_events, insert_event_rows
from server.store.webhooks import PendingEvent, queue_events, webhook_events
from server.store.webhooks import wake as wake_webhooks

FAILURE_NOTICE = NotificationKind.DEVICE_ENROLLMENT_FAILURE.value

FIRMWARE_CHARS = 32  # devices.firmware is String(32); the request schema allows no more


class LostRace(Exception):
    """A conditional update (EC-3, LCK-3, EC-7) changed no row: reload, decide again."""


@dataclass(frozen=True)
class Environment:
    """What a decision needs besides the rows: Appendix A, the catalog, the lockout policy,
    where EST and firmware images are, and the URL a DES entry sends devices to."""

    capabilities: Capabilities
    catalog: Catalog
    policy: LockoutPolicy
    est_base_url: str | None = None
    firmware_images: FirmwareImages | None = None
    des_url: str | None = None


# --- the catalog as the platform edits it (FW-1) --------------------------------------------------

_catalog_cache: dict[str, Catalog] = {}


async def load_catalog(session: AsyncSession) -> Catalog:
    """FW-1: the device-family catalog from table `device_families` (the shipped one while the
    table is empty). Parsed catalogs are kept by content, so a platform edit applies at once."""
    models = {row.model: row.data for row in await session.scalars(select(DeviceFamily))}
    if not models:
        return Catalog.load()
    key = json.dumps(models, sort_keys=True, default=str)
    catalog = _catalog_cache.get(key)
    if catalog is None:
        catalog = Catalog.from_data({"schema_version": 1, "models": models})
        _catalog_cache.clear()  # one catalog is live at a time; no unbounded growth
        _catalog_cache[key] = catalog
    return catalog


# --- facts ----------------------------------------------------------------------------------------


def profile_entry(raw: Mapping[str, Any]) -> ProfileEntry | None:
    """PRF-1: a stored provisioning entry; None when it is not one (treated as no profile)."""
    try:
        return ProfileEntry(
            server_type=ServerType(raw["server_type"]),
            url=str(raw["url"]),
            identity_certificates=bool(raw.get("identity_certificates", False)),
            root_ca_pem=raw.get("root_ca_pem") or None,
            group=int(raw.get("group", 0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def chosen_entry(entries: Any, index: int) -> ProfileEntry | None:
    """SIT-1, PRF-4: entry `index` of a profile's stored entries, or None (gone, not an entry)."""
    if not isinstance(entries, list) or not 0 <= index < len(entries):
        return None
    raw = entries[index]
    return profile_entry(raw) if isinstance(raw, Mapping) else None


async def site_entry(session: AsyncSession, site: Site) -> ProfileEntry | None:
    """SIT-1, PRF-4: the provisioning entry the site uses, or None (no profile, entry gone)."""
    if site.profile_id is None:
        return None
    profile = await session.get(Profile, site.profile_id)
    return None if profile is None else chosen_entry(profile.entries, site.entry)


def canonical_model(catalog: Catalog, model: str) -> str:
    try:
        return catalog.model(model).name
    except DomainError:
        return model


def nec_state(row: Any) -> NecState:
    """EC-1: the stored NEC as the rules see it (`created_at` is when its expiry clock started)."""
    expiry = Expiry(ExpiryUnit(row.expiry_unit), int(row.expiry_value or 0)) if row.expiry_unit else None
    return NecState(row.code, row.total_devices, row.enrolled, expiry, row.created_at)


# One statement per look-up, built once (SQLAlchemy caches its compiled form): the device with its
# owner, site, the site's account, profile and firmware setting; or a typed code with its site.
_devices, _codes, _sites = (cast(Table, model.__table__) for model in (Device, EnrollmentCode, Site))
_profiles, _site_firmware = cast(Table, Profile.__table__), cast(Table, SiteFirmware.__table__)
_owner, _site_account = Account.__table__.alias("owner"), Account.__table__.alias("site_account")
_denied = cast(Table, DeniedCertificate.__table__)


def _allow_list(value: Any) -> tuple[str, ...] | None:
    """An account's `manufacturers` column as the rules take it (None: no list)."""
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def _site_columns(site_account: Any) -> list[Any]:
    return [
        _sites.c.id.label("site_found"),
        _sites.c.account_id.label("site_account_id"),
        _sites.c.pin.label("site_pin"),
        _sites.c.entry.label("site_entry"),
        _sites.c.profile_id.label("site_profile_id"),
        site_account.c.id.label("site_account_found"),
        site_account.c.enabled.label("site_account_enabled"),
        site_account.c.firmware_upgrade.label("site_account_firmware_upgrade"),
        site_account.c.path.label("site_account_path"),
        site_account.c.manufacturers.label("site_account_manufacturers"),
        _profiles.c.id.label("profile_found"),
        _profiles.c.entries.label("profile_entries"),
        _site_firmware.c.setting.label("firmware_setting"),
    ]


def _site_joins(base: Any, site_on: Any, model: Any, *, site_account: Any = None) -> Any:
    """`base` joined with the site (`site_on`), its account (unless `base` is that account), its
    profile and its firmware setting for `model`."""
    joined = base.outerjoin(_sites, site_on)
    if site_account is not None:
        joined = joined.outerjoin(site_account, site_account.c.id == _sites.c.account_id)
    return joined.outerjoin(_profiles, _profiles.c.id == _sites.c.profile_id).outerjoin(
        _site_firmware, and_(_site_firmware.c.site_id == _sites.c.id, _site_firmware.c.model == model)
    )


DEVICE_FACTS = (
    select(
        _devices.c.mac,
        _devices.c.serial,
        _devices.c.model,
        _devices.c.thumbprint,
        _devices.c.approved,
        _devices.c.owner_id,
        _devices.c.site_id,
        _devices.c.associated,
        _devices.c.activated,
        _devices.c.failed_attempts,
        _devices.c.locked_until,
        _devices.c.last_contact,
        _owner.c.id.label("owner_found"),
        _owner.c.enabled.label("owner_enabled"),
        _owner.c.firmware_upgrade.label("owner_firmware_upgrade"),
        _owner.c.path.label("owner_path"),
        _owner.c.manufacturers.label("owner_manufacturers"),
        _denied.c.reason.label("denied_reason"),
        *_site_columns(_site_account),
    )
    .select_from(
        _site_joins(
            _devices.outerjoin(_owner, _owner.c.id == _devices.c.owner_id).outerjoin(
                _denied, _denied.c.thumbprint == bindparam("thumbprint")),
            _sites.c.id == _devices.c.site_id,
            # The stored model is the catalog's name for nearly every device; `load_facts` asks
            # again with the catalog's name when it is not.
            _devices.c.model,
            site_account=_site_account,
        )
    )
    .where(_devices.c.mac == bindparam("mac"))
)
DEVICE_FACTS_READ = CompiledSelect(DEVICE_FACTS)
SITE_FIRMWARE = CompiledSelect(
    select(_site_firmware.c.setting).where(
        _site_firmware.c.site_id == bindparam("site"), _site_firmware.c.model == bindparam("model")
    )
)
NEC_FACTS = (
    select(
        _codes.c.code,
        _codes.c.total_devices,
        _codes.c.enrolled,
        _codes.c.expiry_unit,
        _codes.c.expiry_value,
        _codes.c.created_at,
        *_site_columns(_site_account),
    )
    .select_from(_site_joins(_codes, _sites.c.id == _codes.c.site_id, bindparam("model"), site_account=_site_account))
    .where(_codes.c.code == bindparam("code"))
)
NEC_FACTS_READ = CompiledSelect(NEC_FACTS)
# EC-6: the PEC's account and its site with that PIN (the account is the site's account).
PEC_FACTS = (
    select(*_site_columns(_site_account))
    .select_from(
        _site_joins(
            _site_account,
            and_(_sites.c.account_id == _site_account.c.id, _sites.c.pin == bindparam("pin")),
            bindparam("model"),
        )
    )
    .where(_site_account.c.id == bindparam("account"))
)
PEC_FACTS_READ = CompiledSelect(PEC_FACTS)


def _site_of(row: Any, des_url: str | None) -> SiteFacts | None:
    """SIT-1, SIT-3, PRF-4: the site columns of a facts row (`_site_columns`); a DES entry points
    at this server (module docstring). None when the row names no site."""
    if row.site_found is None:
        return None
    entry = chosen_entry(row.profile_entries, row.site_entry) if row.profile_found is not None else None
    if entry is not None and entry.server_type is ServerType.DES and des_url:
        entry = ProfileEntry(entry.server_type, des_url, entry.identity_certificates, entry.root_ca_pem, entry.group)
    return SiteFacts(
        id=row.site_found,
        account_id=row.site_account_id,
        account_enabled=bool(row.site_account_found is not None and row.site_account_enabled),
        pin=row.site_pin,
        entry=entry,
        firmware_setting=row.firmware_setting,
        account_manufacturers=_allow_list(row.site_account_manufacturers),
    )


def _site_account_of(row: Any) -> AccountFacts | None:
    """ACC-5, FW-3: the site's account as enrollment sees it. There is no per-model account
    setting (SIT-3's `same-as-account` then means `latest`)."""
    if row.site_account_found is None:
        return None
    return AccountFacts(
        row.site_account_found,
        enabled=bool(row.site_account_enabled),
        firmware_upgrade=bool(row.site_account_firmware_upgrade),
        manufacturers=_allow_list(row.site_account_manufacturers),
    )


def code_match(code: str | None, model: str, des_url: str | None) -> ReadPlan[tuple[CodeMatch | None, str | None]]:
    """EC-1, EC-6: what a typed code names — an NEC with its site, or the PEC's account and its
    site with that PIN — and that account's path; None when it names nothing (the rules then
    count a wrong code)."""
    kind = classify_code(code)
    if kind is None or code is None:
        return None, None
    if kind == "pec12":
        account_id, pin = split_pec(code)
        row = yield PEC_FACTS_READ, {"account": account_id, "pin": pin, "model": model}
    else:
        row = yield NEC_FACTS_READ, {"code": code, "model": model}
    if row is None:
        return None, None
    site, account = _site_of(row, des_url), _site_account_of(row)
    if site is None or account is None:
        return None, None
    nec = nec_state(row) if kind != "pec12" else None
    return CodeMatch(site, account, nec=nec), row.site_account_path


def device_record(row: Any) -> DeviceRecord:
    """The imported device; FW-5's first contact and pre-claim come from `last_contact`."""
    first_contact = row.last_contact is None
    return DeviceRecord(
        mac=row.mac,
        serial=row.serial,
        model=row.model,
        thumbprint=row.thumbprint,
        approved=bool(row.approved),
        owner_id=row.owner_id,
        site_id=row.site_id,
        associated=bool(row.associated),
        activated=bool(row.activated),
        failed_attempts=row.failed_attempts or 0,
        locked_until=row.locked_until,
        first_contact=first_contact,
        pre_claimed=first_contact and row.owner_id is not None,
    )


@dataclass(frozen=True)
class LoadedFacts:
    """`EnrollmentFacts` and the materialised paths of the accounts they name (LOG-1: the audit
    entry is filed under one of them; paths never change)."""

    facts: EnrollmentFacts
    account_paths: Mapping[str, str | None]


async def load_facts(
    store: Store, request: RequestFacts, certificate: CertificateFacts, env: Environment
) -> LoadedFacts:
    """Everything `decide_enrollment` needs for one request: one statement for the device, one
    more for a typed code (both on one read snapshot then)."""
    common: dict[str, Any] = {
        "request": request,
        "certificate": certificate,
        "policy": env.policy,
        "catalog": env.catalog,
        "capabilities": env.capabilities,
        "est_base_url": env.est_base_url,
    }
    if env.firmware_images is not None:
        common["firmware_images"] = env.firmware_images
    try:
        mac = normalize_mac(request.mac)
    except DomainError:
        return LoadedFacts(EnrollmentFacts(**common), {})

    def read() -> ReadPlan[LoadedFacts]:
        row = yield DEVICE_FACTS_READ, {"mac": mac, "thumbprint": normalize_thumbprint(certificate.thumbprint)}
        if row is None:
            return LoadedFacts(EnrollmentFacts(**common), {})
        model = canonical_model(env.catalog, row.model)
        site = _site_of(row, env.des_url)
        if site is not None and model != row.model:
            found = yield SITE_FIRMWARE, {"site": site.id, "model": model}
            site = replace(site, firmware_setting=found.setting if found is not None else None)
        match, match_path = (yield from code_match(request.code, model, env.des_url)) if request.code else (None, None)
        owner = None
        paths: dict[str, str | None] = {}
        if row.owner_id is not None:
            paths[row.owner_id] = row.owner_path
            if row.owner_found is not None:
                owner = AccountFacts(
                    row.owner_found,
                    enabled=bool(row.owner_enabled),
                    firmware_upgrade=bool(row.owner_firmware_upgrade),
                    manufacturers=_allow_list(row.owner_manufacturers),
                )
        if match is not None:
            paths[match.account.account_id] = match_path
        facts = EnrollmentFacts(device=device_record(row), owner=owner, site=site, code_match=match,
                                denied=row.denied_reason, **common)
        return LoadedFacts(facts, paths)

    return await store.run_plan(read(), snapshot=bool(request.code))


# --- applying a decision: group commit ------------------------------------------------------------


@dataclass(eq=False)
class _Write:
    """One enrollment attempt's writes: code count, device row, audit entry, notifications."""

    audit: dict[str, Any]
    notices: list[PendingNotice]
    now: datetime
    consume: CodeConsumption | None = None
    device: DeviceRecord | None = None
    updates: DeviceUpdates | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # issue 16: `server.store.timeline`
    webhook_events: list[PendingEvent] = field(default_factory=list)  # issue 16: `server.store.webhooks`
    future: asyncio.Future[str | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _device_write(job: _Write) -> tuple[dict[str, Any], list[Any]] | None:
    """The device row's new values and the WHERE conditions beyond its MAC (EC-7, LCK-3); None
    when the decision leaves the row alone."""
    updates, device = job.updates, job.device
    if updates is None or device is None:
        return None
    values: dict[str, Any] = {"last_contact": updates.last_contact, "firmware": updates.firmware[:FIRMWARE_CHARS]}
    conditions: list[Any] = []
    if updates.enrolled_at is not None:
        values["enrolled_at"] = updates.enrolled_at
    claim = updates.claim
    if claim is not None:
        values.update(owner_id=claim.owner_id, site_id=claim.site_id, associated=True, activated=True)
        if claim.owner_id != device.owner_id:  # ACC-6 bookkeeping, as DEV-3's claim does
            values["previous_owner_id"] = device.owner_id
        conditions += [
            _devices.c.owner_id.is_not_distinct_from(device.owner_id),
            _devices.c.site_id.is_not_distinct_from(device.site_id),
            _devices.c.associated == device.associated,
            _devices.c.activated == device.activated,
        ]
    lock = updates.lock
    if lock is not None:
        values.update(failed_attempts=lock.failed, locked_until=lock.locked_until)
        if lock.expected_failed is not None:
            conditions.append(_devices.c.failed_attempts == lock.expected_failed)
    return values, conditions


_PLAIN_DEVICE_UPDATE = update(_devices).where(_devices.c.mac == bindparam("b_mac"))
_EXISTING_DEVICES = select(_devices.c.mac).where(_devices.c.mac.in_(bindparam("macs", expanding=True)))


def _apply_conditional(conn: Connection, job: _Write, device: tuple[dict[str, Any], list[Any]] | None) -> None:
    """EC-3, LCK-3, EC-7: the code count, then the device row, each only while it still is as the
    decision saw it; `LostRace` (with nothing of this attempt left written) otherwise."""
    consume = job.consume
    nested = conn.begin_nested() if consume is not None and device is not None else None
    try:
        if consume is not None:
            counted = conn.execute(
                update(_codes)
                .where(
                    _codes.c.site_id == consume.site_id,
                    _codes.c.code == consume.code,
                    _codes.c.enrolled < _codes.c.total_devices,
                    or_(_codes.c.expires_at.is_(None), _codes.c.expires_at > job.now),
                )
                .values(enrolled=_codes.c.enrolled + 1)
            )
            if counted.rowcount != 1:
                raise LostRace("EC-3: the code was used up, expired or regenerated meanwhile")
        if device is not None:
            values, conditions = device
            assert job.device is not None
            written = conn.execute(
                update(_devices).where(_devices.c.mac == job.device.mac, *conditions).values(**values)
            )
            if written.rowcount != 1:
                raise LostRace("LCK-3/EC-7: the device changed meanwhile")
    except LostRace:
        if nested is not None:
            nested.rollback()
        raise
    if nested is not None:
        nested.commit()


def _apply_plain(conn: Connection, rows: list[tuple[str, dict[str, Any]]]) -> dict[int, str]:
    """(MAC, values) of device rows written whatever their state (last contact, firmware,
    enrolled_at, a lifted lock): one statement for all rows that set the same columns. Answers
    the rows whose device has gone meanwhile (by index in `rows`)."""
    lost: dict[int, str] = {}
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, (_, values) in enumerate(rows):
        groups.setdefault(tuple(sorted(values)), []).append(index)
    for indexes in groups.values():
        indexes.sort(key=lambda i: rows[i][0])  # one lock order for every writer
        params = [{"b_mac": rows[i][0], **rows[i][1]} for i in indexes]
        result = conn.execute(_PLAIN_DEVICE_UPDATE, params)
        if conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(params):
            continue
        # asyncpg reports no row counts for many rows at once: ask which devices still exist.
        existing = set(conn.scalars(_EXISTING_DEVICES, {"macs": sorted({p["b_mac"] for p in params})}))
        lost.update({i: "EC-7: the device was deleted meanwhile" for i in indexes if rows[i][0] not in existing})
    return lost


def write_batch(conn: Connection, batch: list[_Write]) -> dict[int, str]:
    """Every attempt of `batch` in the caller's transaction (module docstring); answers the
    attempts that lost a race (by index), of which nothing was written."""
    lost: dict[int, str] = {}
    plain: list[tuple[str, dict[str, Any]]] = []
    plain_index: list[int] = []
    # Conditional writes first: code rows before device rows, as in every transaction.
    for index, job in enumerate(batch):
        device = _device_write(job)
        if job.consume is None and (device is None or not device[1]):
            if device is not None and job.device is not None:
                plain.append((job.device.mac, device[0]))
                plain_index.append(index)
            continue
        try:
            _apply_conditional(conn, job, device)
        except LostRace as race:
            lost[index] = str(race)
    if plain:
        lost.update({plain_index[i]: why for i, why in _apply_plain(conn, plain).items()})
    written = [job for index, job in enumerate(batch) if index not in lost]
    insert_audit_rows(conn, [job.audit for job in written])
    insert_event_rows(conn, [row for job in written for row in job.events])  # issue 16: one INSERT
    queue_notifications(conn, [notice for job in written for notice in job.notices])
    queue_events(conn, [e for job in written for e in job.webhook_events])  # one query, only when any
    return lost


class _NotWritten(Exception):
    """A batch failed inside its transaction, before COMMIT: nothing of it was written."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class EnrollmentWriter:
    """Group commit (module docstring): attempts queue here, and one task writes whatever has
    queued in one transaction, then the next batch. Each attempt learns whether it was written
    or lost a race. A batch that fails before its COMMIT is written again one attempt per
    transaction, so one attempt's fault never fails another's; a COMMIT that fails fails the
    batch's attempts (its outcome is unknown: writing them again could log an attempt twice)."""

    MAX_BATCH = 256

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[_Write] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, job: _Write) -> None:
        """Queue `job` and wait until it is committed; `LostRace` when a conditional update lost."""
        self._queue.append(job)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        lost = await job.future
        if lost is not None:
            raise LostRace(lost)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                await self._write_batch(batch)
            except asyncio.CancelledError:
                for job in batch + self._queue:
                    job.future.cancel()
                raise
            except _NotWritten as failed:
                if len(batch) == 1:
                    _settle(batch[0], failed.cause)
                    continue
                for job in batch:
                    try:
                        await self._write_batch([job])
                    except _NotWritten as alone:
                        _settle(job, alone.cause)
                    except Exception as alone:
                        _settle(job, alone)
            except Exception as exc:
                for job in batch:
                    _settle(job, exc)

    async def _write_batch(self, batch: list[_Write]) -> None:
        def work(conn: Connection) -> dict[int, str]:
            try:
                return write_batch(conn, batch)
            except Exception as exc:
                raise _NotWritten(exc) from exc

        lost = await self.store.run_write(work)
        for index, job in enumerate(batch):
            _settle(job, lost.get(index))


def _settle(job: _Write, outcome: str | Exception | None) -> None:
    if job.future.done():
        return
    if isinstance(outcome, Exception):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(outcome)


_writers: weakref.WeakKeyDictionary[Store, EnrollmentWriter] = weakref.WeakKeyDictionary()


def writer(store: Store) -> EnrollmentWriter:
    """The store's enrollment writer (one per store and process)."""
    found = _writers.get(store)
    if found is None:
        found = _writers[store] = EnrollmentWriter(store)
    return found


def _audit_row(ctx: ServerContext, decision: Decision, paths: Mapping[str, str | None]) -> dict[str, Any]:
    audit = decision.audit
    return audit_values(
        at=ctx.clock(),
        process=audit.process,
        action=audit.action,
        status=audit.status,
        message=f"{audit.mac} [{audit.subject}] {decision.result} ({audit.reason}): {audit.message}",
        client_host=audit.client_host,
        account_id=audit.account_id,
        account_path=paths.get(audit.account_id) if audit.account_id else None,
    )


async def apply_decision(ctx: ServerContext, loaded: LoadedFacts, decision: Decision, now: datetime) -> None:
    """Write the decision: code count (EC-3), device row (EC-7, LCK-2/3, last contact and
    firmware), audit entry (ENR-5), notifications (NTF-1) — committed together with whatever
    other attempts are queued. Raises `LostRace` when a conditional update finds the row
    changed; then nothing of this attempt was written."""
    created_at = ctx.clock()
    notices: list[PendingNotice] = []
    admitted: list[Admitted] = []
    for notice in decision.notify:
        recipient = notice.facts.get("account_id")
        if not recipient:
            continue
        facts = dict(notice.facts)
        if notice.kind == FAILURE_NOTICE:  # how often (issue 13): server.domain.failure_notices
            why = f"{facts.get('result', '')}:{facts.get('reason', '')}"
            let_through = ctx.failure_notices.admit(recipient, facts.get("mac", ""), why, now)
            if let_through is None:
                continue
            admitted.append(let_through)
            facts["detail"] = f"{facts.get('detail', '')}\n{let_through.note}".lstrip("\n")
        notices.append(PendingNotice(recipient, notice.kind, facts, created_at))
    job = _Write(
        audit=_audit_row(ctx, decision, loaded.account_paths),
        notices=notices,
        now=now,
        consume=decision.consume_code,
        device=loaded.facts.device,
        updates=decision.device_updates,
        events=enrollment_events(loaded.facts, decision, now),
        webhook_events=webhook_events(decision, loaded.facts.device, loaded.account_paths, created_at),
    )
    try:
        await writer(ctx.store).write(job)
    except BaseException:
        for one in admitted:  # not written: the attempt decided again (or none) gets the notice
            ctx.failure_notices.release(one)
        raise
    if job.webhook_events:
        wake_webhooks()  # the delivery loop sends them now, outside this request


async def log_attempt(ctx: ServerContext, audit: dict[str, Any]) -> None:
    """ENR-5: an attempt that decides nothing (a refused body) is logged all the same."""
    await writer(ctx.store).write(_Write(audit=audit, notices=[], now=ctx.clock()))


# --- the device behind a factory certificate (ENR-6, ENR-8) --------------------------------------


async def device_of_certificate(session: AsyncSession, cn: str | None, thumbprint: str) -> Device | None:
    """ENR-1: the imported, approved device whose MAC is the certificate's CN and whose imported
    thumbprint is the certificate's; None otherwise."""
    try:
        mac = normalize_mac(cn)
    except DomainError:
        return None
    device = await session.get(Device, mac)
    if device is None or not device.approved or not device.thumbprint:
        return None
    imported = normalize_thumbprint(device.thumbprint)
    return device if imported is not None and imported == normalize_thumbprint(thumbprint) else None


@dataclass(frozen=True)
class EnrolledDevice:
    """ENR-6, ENR-8: a device that may fetch its site's files and identity certificates."""

    device: Device
    site: Site
    entry: ProfileEntry | None


async def enrolled_device(session: AsyncSession, cn: str | None, thumbprint: str) -> EnrolledDevice | DomainError:
    """The enrolled device behind a factory certificate — approved, claimed, associated with a
    site and activated (DEV-6), its owner's and its site's accounts enabled (ACC-5) — or why not:
    `unknown-device` (404), `not-enrolled` or `disabled-account` (403)."""
    device = await device_of_certificate(session, cn, thumbprint)
    if device is None:
        return DomainError("unknown-device", "No imported, approved device has this factory certificate.", 404)
    state = DeviceState(
        mac=device.mac,
        serial=device.serial,
        model=device.model,
        approved=bool(device.approved),
        owner_id=device.owner_id,
        site_id=device.site_id,
        associated=bool(device.associated),
        activated=bool(device.activated),
    )
    site = await session.get(Site, device.site_id) if device.site_id is not None else None
    if not zero_touch_ready(state) or site is None:
        return DomainError(
            "not-enrolled", "The device is not enrolled: claimed, associated with a site and activated.", 403
        )
    for account_id in dict.fromkeys((device.owner_id, site.account_id)):
        account = await session.get(Account, account_id) if account_id else None
        if account is None or not account.enabled:
            return DomainError("disabled-account", f"The account {account_id} of the device is disabled.", 403)
    return EnrolledDevice(device, site, await site_entry(session, site))
