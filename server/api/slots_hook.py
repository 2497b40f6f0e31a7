"""FF-1 two-step, the device's half: a device reporting in (`POST /device/v1/enroll`) fills the
open slot prepared for it, before its request is decided as usual (`server.device.enroll`).

Decisions:
- "Reporting in" is the device's enrollment request over mutual TLS: its factory certificate
  proves it is the hardware the slot names (the seed's "ensure ownership of hardware").
- Only a verified device fills a slot: an imported, approved device whose certificate CN is the
  body's MAC and whose thumbprint is the imported one, not on the deny-list (ENR-1, DEV-2). For
  any other request the hook does nothing, and the request is answered as it always was.
- A slot matches by the MAC, or by the *imported* serial (not the body's). A slot the device
  cannot fill (`fleet_freedom.fill_refusal`: other model, held outside the reach of the slot and
  its creator, an unclaimed device without DEV-3's proof, account disabled, site without profile;
  here: the account's manufacturer allow-list) stays open; the attempt is audited FAIL `slot.fill`.
- Filling is one transaction: the slot is marked filled only while still open (conditional
  UPDATE: two requests of one device fill it once), and the device is claimed by the slot's
  account, associated with its site and activated (EC-7's one step), audited SUCCESS `slot.fill`.
  The enrollment decision that follows sees an enrolled device: `redirect` (ENR-2).
- The common case — no open slot names the device — costs one indexed read, off SQLite's write lock.
"""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from server.api.devices.claim import label_code_required_for
from server.context import ServerContext
from server.domain import fleet_freedom
from server.domain.enrollment.admission import manufacturer_refusal
from server.domain.enrollment.facts import CertificateFacts, RequestFacts
from server.domain.errors import DomainError
from server.domain.identity import normalize_mac
from server.pki.keys import normalize_thumbprint
from server.store.audit import write_audit
from server.store.models import Account, DeniedCertificate, Device, ProvisioningSlot, Site, User

log = logging.getLogger(__name__)
_OPEN = ProvisioningSlot.filled_at.is_(None)


async def fill_slot_on_report_in(ctx: ServerContext, request: RequestFacts, certificate: CertificateFacts) -> None:
    """FF-1: fill the open slot this verified device is named in, if any (see the module docstring).
    A failure here leaves the slot open and the request to be answered as without slots."""
    try:
        await _fill(ctx, request, certificate)
    except Exception:
        log.exception("FF-1: filling a slot for %s failed; the request goes on without it", request.mac)


def open_slot_named(conn: Connection, mac: str) -> int | None:
    """One indexed statement: an open slot naming this MAC or the serial imported for it (not the
    body's: a device names a slot by what the store knows of it)."""
    imported = select(Device.serial).where(Device.mac == mac).scalar_subquery()
    named = or_(ProvisioningSlot.mac == mac, ProvisioningSlot.serial == imported)
    return conn.execute(select(ProvisioningSlot.id).where(_OPEN, named).limit(1)).scalar()


async def _fill(ctx: ServerContext, request: RequestFacts, certificate: CertificateFacts) -> None:
    try:
        mac = normalize_mac(request.mac)
        if normalize_mac(certificate.cn) != mac:  # ENR-1: the certificate is this device's
            return
    except DomainError:
        return
    thumbprint = normalize_thumbprint(certificate.thumbprint or "")
    if thumbprint is None or await ctx.store.run_read(partial(open_slot_named, mac=mac), snapshot=False) is None:
        return
    async with ctx.store.transaction() as session:
        session.info["clock"] = ctx.clock
        device = await session.get(Device, mac)
        if device is None or not device.approved or not device.thumbprint:  # ENR-1, DEV-2
            return
        if normalize_thumbprint(device.thumbprint) != thumbprint:
            return
        if await session.get(DeniedCertificate, thumbprint) is not None:  # issue 13
            return
        owner = await session.get(Account, device.owner_id) if device.owner_id else None
        held_by = owner.path if owner is not None else None
        reporting = fleet_freedom.ReportingDevice(
            device.mac, device.serial, device.model, held_by, has_label_code=device.label_code_hash is not None
        )
        creator = aliased(Account)
        rows = await session.execute(
            select(ProvisioningSlot, Account, Site, creator.path)
            .join(Account, Account.id == ProvisioningSlot.account_id)
            .join(Site, Site.id == ProvisioningSlot.site_id)
            .outerjoin(User, User.login == ProvisioningSlot.created_by)
            .outerjoin(creator, creator.id == User.account_id)
            .where(_OPEN, or_(ProvisioningSlot.mac == device.mac, ProvisioningSlot.serial == device.serial))
            .order_by(ProvisioningSlot.id)
        )
        now = ctx.clock()
        for slot, account, site, creator_path in rows.all():
            view = fleet_freedom.SlotView(
                slot.model, slot.mac, slot.serial, account.path, account.enabled, site.profile_id is not None,
                creator_path=creator_path,
                label_code_required=held_by is None and await label_code_required_for(session, account.id),
            )
            refusal = fleet_freedom.fill_refusal(view, reporting) or _manufacturer_refusal(account, certificate)
            if refusal is not None:
                await write_audit(
                    session, ctx, None, process="DEVICE", action="slot.fill", status="FAIL",
                    client_host=request.client_host, account_id=slot.account_id,
                    message=f"{device.mac} reported in; slot {slot.id} stays open: {refusal[0]}: {refusal[1]}",
                )
                continue
            won = await session.execute(
                update(ProvisioningSlot)
                .where(ProvisioningSlot.id == slot.id, _OPEN)
                .values(filled_at=now, filled_mac=device.mac)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]  # another request of this device filled it
                return
            if device.owner_id != account.id:  # ACC-6 bookkeeping, as DEV-3's claim does
                device.previous_owner_id = device.owner_id
            device.owner_id, device.site_id = account.id, site.id
            device.associated = device.activated = True
            await write_audit(
                session, ctx, None, process="DEVICE", action="slot.fill", status="SUCCESS",
                client_host=request.client_host, account_id=account.id,
                message=f"{device.mac} ({device.model}) reported in and filled slot {slot.id}: "
                f"account {account.id}, site {site.id}, activated",
            )
            return


def _manufacturer_refusal(account: Account, certificate: CertificateFacts) -> tuple[str, str] | None:
    """Issue 13: a slot account whose manufacturer-CA allow-list leaves out this certificate's CA
    takes no such device, as its codes do not."""
    allowed = account.manufacturers
    listed = tuple(str(v) for v in allowed) if isinstance(allowed, list) else None
    refusal = manufacturer_refusal(certificate.manufacturer, [(account.id, listed)])
    return (refusal.reason, refusal.message) if refusal is not None else None
