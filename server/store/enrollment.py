"""The store's side of a device's enrollment (PROTOCOL §2): the facts `decide_enrollment` needs,
and writing its `Decision` in the caller's transaction (ENR-5, EC-3, EC-7, LCK-2, LCK-3).

`server.domain.enrollment` decides; this module looks things up and writes. The caller runs
`load_facts` -> `decide_enrollment` -> `apply_decision` in ONE transaction and, when
`apply_decision` raises `LostRace`, rolls back and does it all again with fresh facts.

Decisions:
- EC-3: an NEC is counted with `UPDATE enrollment_codes SET enrolled = enrolled + 1 WHERE
  site_id = :site AND code = :code AND enrolled < total_devices AND (expires_at IS NULL OR
  expires_at > :now)`; no row -> `LostRace` (the code was used up, expired or regenerated
  meanwhile), and the decision taken again answers `code_invalid`.
- LCK-3: a counted wrong code is written `WHERE failed_attempts = :expected_failed`; no row ->
  `LostRace`, so two concurrent wrong codes never both count from the same value.
- EC-7: a claim is written only while the device still is as the facts saw it (owner, site,
  associated, activated): the same device sending the right code twice at once is claimed,
  and its NEC counted, once.
- Writes go code row first, then device row, in every transaction, so two enrollments never
  wait for each other in opposite orders (PostgreSQL deadlocks).
- SQLite runs every transaction with BEGIN IMMEDIATE (`server.store.db`), so there races
  cannot happen at all; on PostgreSQL (READ COMMITTED) the conditional UPDATEs wait for the
  row and re-check their WHERE on the committed value, which is what makes them exact.
- ENR-5: the audit entry (process ENROLLMENT, action `enroll`) carries the client host in its
  column and, in its message, the MAC, the certificate subject, the result and the reason id:
  `A4251B0C3D5E [O=...,CN=A4251B0C3D5E] code_invalid (wrong-code): J179 4.1.11.0.9: ...`.
  It is filed under the account the decision names (the device owner, or the code's
  account), so that account's administrators see it (LOG-1); unknown devices only the platform.
- DES (ENR-6): a profile entry of server type DES names this server as the provisioning
  server (the guide: enter `https://des.avaya.com` and pick DES). The device is sent where this
  server really serves the site's files, `<device_url>/device/v1/files/`, not the URL typed
  in the entry; the ENR-4 checks run on that URL (a Vantage needs a host name there, so
  start the server with `--hostname`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from server.context import ServerContext
from server.domain.codes import Expiry, ExpiryUnit, NecState, classify_code, split_pec
from server.domain.devices import DeviceState, zero_touch_ready
from server.domain.enrollment import (
    AccountFacts,
    Capabilities,
    CertificateFacts,
    CodeMatch,
    Decision,
    DeviceRecord,
    EnrollmentFacts,
    FirmwareImages,
    RequestFacts,
    SiteFacts,
)
from server.domain.errors import DomainError
from server.domain.firmware import Catalog
from server.domain.identity import normalize_mac
from server.domain.lockout import LockoutPolicy
from server.domain.profiles import ProfileEntry, ServerType
from server.pki.keys import normalize_thumbprint
from server.store.audit import write_audit
from server.store.models import Account, Device, DeviceFamily, EnrollmentCode, Profile, Site, SiteFirmware
from server.store.notify import queue_notification

FIRMWARE_CHARS = 32  # devices.firmware is String(32); the request schema allows no more


class LostRace(Exception):
    """A conditional update (EC-3, LCK-3, EC-7) changed no row: roll back, reload, decide again."""


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


async def site_entry(session: AsyncSession, site: Site) -> ProfileEntry | None:
    """SIT-1, PRF-4: the provisioning entry the site uses, or None (no profile, entry gone)."""
    if site.profile_id is None:
        return None
    profile = await session.get(Profile, site.profile_id)
    if profile is None or not isinstance(profile.entries, list) or not 0 <= site.entry < len(profile.entries):
        return None
    raw = profile.entries[site.entry]
    return profile_entry(raw) if isinstance(raw, Mapping) else None


def canonical_model(catalog: Catalog, model: str) -> str:
    try:
        return catalog.model(model).name
    except DomainError:
        return model


async def account_facts(session: AsyncSession, account_id: str | None) -> AccountFacts | None:
    """ACC-5, FW-3: the account as enrollment sees it. There is no per-model account setting
    (SIT-3's `same-as-account` then means `latest`)."""
    if account_id is None:
        return None
    account = await session.get(Account, account_id)
    if account is None:
        return None
    return AccountFacts(account.id, enabled=bool(account.enabled), firmware_upgrade=bool(account.firmware_upgrade))


async def site_facts(session: AsyncSession, site_id: int | None, model: str, des_url: str | None) -> SiteFacts | None:
    """SIT-1, SIT-3, PRF-4: a customer site with its account's state, PIN, entry and the firmware
    setting for `model` (catalog name); a DES entry points at this server (module docstring)."""
    if site_id is None:
        return None
    site = await session.get(Site, site_id)
    if site is None:
        return None
    account = await session.get(Account, site.account_id)
    entry = await site_entry(session, site)
    if entry is not None and entry.server_type is ServerType.DES and des_url:
        entry = ProfileEntry(entry.server_type, des_url, entry.identity_certificates, entry.root_ca_pem, entry.group)
    setting = await session.scalar(
        select(SiteFirmware.setting).where(SiteFirmware.site_id == site.id, SiteFirmware.model == model)
    )
    return SiteFacts(
        id=site.id,
        account_id=site.account_id,
        account_enabled=bool(account is not None and account.enabled),
        pin=site.pin,
        entry=entry,
        firmware_setting=setting,
    )


def nec_state(row: EnrollmentCode) -> NecState:
    """EC-1: the stored NEC as the rules see it (`created_at` is when its expiry clock started)."""
    expiry = Expiry(ExpiryUnit(row.expiry_unit), int(row.expiry_value or 0)) if row.expiry_unit else None
    return NecState(row.code, row.total_devices, row.enrolled, expiry, row.created_at)


async def code_match(session: AsyncSession, code: str | None, model: str, des_url: str | None) -> CodeMatch | None:
    """EC-1, EC-6: what a typed code names: an NEC with its site, or the PEC's account and its
    site with that PIN; None when it names nothing (the rules then count a wrong code)."""
    kind = classify_code(code)
    if kind is None or code is None:
        return None
    if kind == "pec12":
        account_id, pin = split_pec(code)
        account = await account_facts(session, account_id)
        if account is None:
            return None
        site_id = await session.scalar(select(Site.id).where(Site.account_id == account_id, Site.pin == pin))
        site = await site_facts(session, site_id, model, des_url)
        return CodeMatch(site, account) if site is not None else None
    row = await session.scalar(select(EnrollmentCode).where(EnrollmentCode.code == code))
    if row is None:
        return None
    site = await site_facts(session, row.site_id, model, des_url)
    account = await account_facts(session, site.account_id) if site is not None else None
    if site is None or account is None:
        return None
    return CodeMatch(site, account, nec=nec_state(row))


def device_record(device: Device) -> DeviceRecord:
    """The imported device; FW-5's first contact and pre-claim come from `last_contact`."""
    first_contact = device.last_contact is None
    return DeviceRecord(
        mac=device.mac,
        serial=device.serial,
        model=device.model,
        thumbprint=device.thumbprint,
        approved=bool(device.approved),
        owner_id=device.owner_id,
        site_id=device.site_id,
        associated=bool(device.associated),
        activated=bool(device.activated),
        failed_attempts=device.failed_attempts or 0,
        locked_until=device.locked_until,
        first_contact=first_contact,
        pre_claimed=first_contact and device.owner_id is not None,
    )


async def load_facts(
    session: AsyncSession, request: RequestFacts, certificate: CertificateFacts, env: Environment
) -> EnrollmentFacts:
    """Everything `decide_enrollment` needs for one request, read in the caller's transaction."""
    device: Device | None = None
    try:
        device = await session.get(Device, normalize_mac(request.mac))
    except DomainError:
        device = None
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
    if device is None:
        return EnrollmentFacts(**common)
    model = canonical_model(env.catalog, device.model)
    match = None
    if request.code:
        match = await code_match(session, request.code, model, env.des_url)
    return EnrollmentFacts(
        device=device_record(device),
        owner=await account_facts(session, device.owner_id),
        site=await site_facts(session, device.site_id, model, env.des_url),
        code_match=match,
        **common,
    )


# --- applying a decision --------------------------------------------------------------------------


def _changed(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


async def apply_decision(
    session: AsyncSession, ctx: ServerContext, facts: EnrollmentFacts, decision: Decision, now: datetime
) -> None:
    """Write the decision: code count (EC-3), device row (EC-7, LCK-2/3, last contact and
    firmware), audit entry (ENR-5), notifications (NTF-1). Raises `LostRace` when a
    conditional update finds the row changed; the caller's transaction then rolls back."""
    consume = decision.consume_code
    if consume is not None:
        counted = await session.execute(
            update(EnrollmentCode)
            .where(
                EnrollmentCode.site_id == consume.site_id,
                EnrollmentCode.code == consume.code,
                EnrollmentCode.enrolled < EnrollmentCode.total_devices,
                or_(EnrollmentCode.expires_at.is_(None), EnrollmentCode.expires_at > now),
            )
            .values(enrolled=EnrollmentCode.enrolled + 1)
            .execution_options(synchronize_session=False)
        )
        if _changed(counted) != 1:
            raise LostRace("EC-3: the code was used up, expired or regenerated meanwhile")
    await _update_device(session, facts, decision)
    audit = decision.audit
    await write_audit(
        session,
        ctx,
        None,
        process=audit.process,
        action=audit.action,
        status=audit.status,
        message=f"{audit.mac} [{audit.subject}] {decision.result} ({audit.reason}): {audit.message}",
        client_host=audit.client_host,
        account_id=audit.account_id,
    )
    for notice in decision.notify:
        recipient = notice.facts.get("account_id")
        if recipient and await session.get(Account, recipient) is not None:
            await queue_notification(session, recipient, notice.kind, facts=dict(notice.facts))


async def _update_device(session: AsyncSession, facts: EnrollmentFacts, decision: Decision) -> None:
    updates, device = decision.device_updates, facts.device
    if updates is None or device is None:
        return
    values: dict[str, Any] = {"last_contact": updates.last_contact, "firmware": updates.firmware[:FIRMWARE_CHARS]}
    where = [Device.mac == device.mac]
    if updates.enrolled_at is not None:
        values["enrolled_at"] = updates.enrolled_at
    claim = updates.claim
    if claim is not None:
        values.update(owner_id=claim.owner_id, site_id=claim.site_id, associated=True, activated=True)
        if claim.owner_id != device.owner_id:  # ACC-6 bookkeeping, as DEV-3's claim does
            values["previous_owner_id"] = device.owner_id
        where += [
            Device.owner_id.is_not_distinct_from(device.owner_id),
            Device.site_id.is_not_distinct_from(device.site_id),
            Device.associated == device.associated,
            Device.activated == device.activated,
        ]
    lock = updates.lock
    if lock is not None:
        values.update(failed_attempts=lock.failed, locked_until=lock.locked_until)
        if lock.expected_failed is not None:
            where.append(Device.failed_attempts == lock.expected_failed)
    written = await session.execute(
        update(Device).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    if _changed(written) != 1:
        raise LostRace("LCK-3/EC-7: the device changed meanwhile")


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
