"""FF-1 two-step, the device's half: a device reporting in (`POST /device/v1/enroll`) fills the
open slot prepared for it, before its request is decided as usual (`server.device.enroll`).

Decisions:
- "Reporting in" is the device's enrollment request over mutual TLS: its factory certificate
  proves it is the hardware the slot names (the seed's "ensure ownership of hardware").
- Only a verified device fills a slot: an imported, approved device whose certificate CN is the
  body's MAC and whose thumbprint is the imported one, not on the deny-list (ENR-1, DEV-2). For
  any other request the hook does nothing, and the request is answered as it always was.
- A slot matches by the MAC, or by the *imported* serial (not the body's). A slot the device
  cannot fill (`fleet_freedom.fill_refusal`: other model, held outside the slot's line, account
  disabled, site without profile) stays open; the attempt is audited FAIL `slot.fill`.
- Filling is one transaction: the slot is marked filled only while still open (conditional
  UPDATE: two requests of one device fill it once), and the device is claimed by the slot's
  account, associated with its site and activated (EC-7's one step), audited SUCCESS `slot.fill`.
  The enrollment decision that follows sees an enrolled device: `redirect` (ENR-2).
- The common case — no open slot names the device — costs one indexed read, off SQLite's write lock.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from server.context import ServerContext
from server.domain import fleet_freedom
from server.domain.enrollment.facts import CertificateFacts, RequestFacts
from server.domain.enrollment.rule import canonical_mac
from server.store.audit import write_audit
from server.store.models import Account, DeniedCertificate, Device, ProvisioningSlot, Site

log = logging.getLogger(__name__)
_OPEN = ProvisioningSlot.filled_at.is_(None)


def _thumbprint(text: str | None) -> str:
    return re.sub(r"[\s:]", "", text).upper() if isinstance(text, str) else ""


async def fill_slot_on_report_in(ctx: ServerContext, request: RequestFacts, certificate: CertificateFacts) -> None:
    """FF-1: fill the open slot this verified device is named in, if any (see the module docstring).
    A failure here leaves the slot open and the request to be answered as without slots."""
    try:
        await _fill(ctx, request, certificate)
    except Exception:
        log.exception("FF-1: filling a slot for %s failed; the request goes on without it", request.mac)


async def _fill(ctx: ServerContext, request: RequestFacts, certificate: CertificateFacts) -> None:
    mac = canonical_mac(request.mac)
    if canonical_mac(certificate.cn) != mac:
        return

    def candidate(conn: Connection) -> int | None:
        named = or_(ProvisioningSlot.mac == mac, ProvisioningSlot.serial == request.serial)
        return conn.execute(select(ProvisioningSlot.id).where(_OPEN, named).limit(1)).scalar()

    if await ctx.store.run_read(candidate, snapshot=False) is None:
        return
    async with ctx.store.transaction() as session:
        session.info["clock"] = ctx.clock
        device = await session.get(Device, mac)
        if device is None or not device.approved or not device.thumbprint:
            return
        thumbprint = _thumbprint(certificate.thumbprint)
        if _thumbprint(device.thumbprint) != thumbprint:
            return
        if await session.get(DeniedCertificate, thumbprint) is not None:
            return
        owner = await session.get(Account, device.owner_id) if device.owner_id else None
        held_by = owner.path if owner is not None else None
        reporting = fleet_freedom.ReportingDevice(device.mac, device.serial, device.model, held_by)
        rows = await session.execute(
            select(ProvisioningSlot, Account, Site)
            .join(Account, Account.id == ProvisioningSlot.account_id)
            .join(Site, Site.id == ProvisioningSlot.site_id)
            .where(_OPEN, or_(ProvisioningSlot.mac == device.mac, ProvisioningSlot.serial == device.serial))
            .order_by(ProvisioningSlot.id)
        )
        now = ctx.clock()
        for slot, account, site in rows.all():
            view = fleet_freedom.SlotView(
                slot.model, slot.mac, slot.serial, account.path, account.enabled, site.profile_id is not None
            )
            refusal = fleet_freedom.fill_refusal(view, reporting)
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
