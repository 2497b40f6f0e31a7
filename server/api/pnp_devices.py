"""Admin API, PNP-1 on one device: its detail with the placement history, completing its details
remotely, reprovisioning it to another account/site, and replacing it by a new device.

Decisions (docs/pnp.md):
- Reprovisioning keeps MAC (the device id), serial, factory thumbprint and identity certificate;
  owner, site and activation change in one transaction with a history entry and an audit entry
  `from account A site S -> to account B site T`. Same place again: 409 `already-placed`.
- Replacement takes the new device's factory certificate (PEM), not a bare thumbprint: it must be
  issued by a manufacturer CA the device listener trusts (signature checked, not revoked; its
  validity period is the TLS handshake's business at enrollment, as for every device), with
  CN = the new MAC and serialNumber = the new serial (PROTOCOL §1).
  So a replacement cannot smuggle in an identity no manufacturer issued, and needs no import
  (DEV-1) or approval (DEV-2) of its own: it inherits the old device's. The new MAC, serial and
  thumbprint must be unused (409 `device-exists`, `serial-exists`, `certificate-in-use`).
- In the same transaction the old device is released (unclaimed, no site, not activated, its
  labels moved to the new device) and its thumbprint goes on the deny-list with the reason
  `replaced by <new MAC>`, so its certificate gets 403 `certificate-denied` at the device
  endpoint. A device replaced before answers 409 `already-replaced`.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select

from server.api.devices import Notices, scope_devices, state_of, write_back
from server.api.pnp_common import ACCOUNT_ID, MODEL, SERIAL, SITE_ID, detail_json, event, history, scoped_device
from server.api.pnp_common import target as place_target
from server.api.routing import Api, Req
from server.context import ServerContext
from server.domain import inputs, pnp
from server.domain.errors import DomainError, conflict, invalid, not_found
from server.domain.identity import normalize_mac
from server.pki.keys import thumbprint as thumbprint_of
from server.store.models import DeniedCertificate, Device, DeviceLabel, Label, PnpEvent

api = Api()

COMPLETE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "labels": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "pattern": inputs.NAME_PATTERN,
            },
        },
        "product_id": {"type": ["string", "null"], "maxLength": 64, "pattern": inputs.NAME_PATTERN},
        "hardware": {"type": ["string", "null"], "maxLength": 64, "pattern": inputs.NAME_PATTERN},
    },
}
REPROVISION = {
    "type": "object",
    "required": ["site_id"],
    "additionalProperties": False,
    "properties": {"account_id": ACCOUNT_ID, "site_id": SITE_ID},
}
REPLACE = {
    "type": "object",
    "required": ["new_mac", "new_serial", "new_certificate"],
    "additionalProperties": False,
    "properties": {
        "new_mac": {"type": "string", "minLength": 1, "maxLength": 32},
        "new_serial": SERIAL,
        "new_model": MODEL,
        "new_certificate": {
            "type": "string",
            "minLength": 1,
            "maxLength": 16384,
            "description": "the new device's factory certificate, PEM",
        },
    },
}


def _mac(req: Req) -> str:
    try:
        return normalize_mac(req.param("mac"))
    except DomainError:
        raise not_found("device-not-found", f"no device {req.param('mac')[:32]!r} in your hierarchy") from None


@api.route(
    "GET",
    "/pnp/devices/{mac}",
    summary="A device with its PNP-1 history: pre-registration, QR onboarding, reprovisioning (from -> to), "
    "replacement links (replaces / replaced_by)",
    action="devices.read",
    process="DEVICE",
    tag="pnp",
)
async def get_pnp_device(req: Req) -> Any:
    mac = _mac(req)
    try:
        device = await scoped_device(req, mac)
    except DomainError:
        # A replaced device belongs to nobody any more: whoever sees its replacement sees it.
        link = await req.session.scalar(select(PnpEvent).where(PnpEvent.kind == "replaced", PnpEvent.mac == mac))
        if link is None or link.other_mac is None:
            raise
        old = await req.session.get(Device, mac)
        visible = await req.session.scalar(
            scope_devices(select(Device.mac).where(Device.mac == link.other_mac), req.actor)
        )
        if old is None or visible is None:
            raise
        device = old
    return await detail_json(req, device)


@api.route(
    "PATCH",
    "/pnp/devices/{mac}",
    summary="Complete an onboarded device's details remotely (PNP-1): labels (of the holding account), "
    "product ID, hardware",
    action="devices.associate_site",
    process="DEVICE",
    body=COMPLETE,
    tag="pnp",
)
async def complete_pnp_device(req: Req) -> Any:
    device = await scoped_device(req, _mac(req), lock=True)
    changed = []
    for name in ("product_id", "hardware"):
        if name in req.body:
            setattr(device, name, req.body[name])
            changed.append(name)
    if "labels" in req.body:
        owner = device.owner_id
        assert owner is not None  # in a partner's scope means held by its subtree
        names = list(dict.fromkeys(req.body["labels"]))
        existing = {lab.name: lab for lab in await req.session.scalars(select(Label).where(Label.account_id == owner))}
        await req.session.execute(
            delete(DeviceLabel).where(
                DeviceLabel.mac == device.mac, DeviceLabel.label_id.in_([lab.id for lab in existing.values()])
            )
        )
        for name in names:
            label = existing.get(name)
            if label is None:
                label = Label(account_id=owner, name=name, description="")
                req.session.add(label)
                await req.session.flush()
            req.session.add(DeviceLabel(mac=device.mac, label_id=label.id))
        changed.append("labels")
    await req.session.flush()
    req.audit_message = f"completed {device.mac}: {', '.join(changed)}"
    return await detail_json(req, device)


@api.route(
    "POST",
    "/pnp/devices/{mac}/reprovision",
    summary="Move a device to another account/site without changing its identity (PNP-1); its next contact "
    "gets the new site's profile",
    action="devices.associate_site",
    process="DEVICE",
    body=REPROVISION,
    tag="pnp",
    responses={"409": {"description": "already-placed, not-claimed"}, "422": {"description": "no-profile"}},
)
async def reprovision_device(req: Req) -> Any:
    t = await place_target(req, req.body.get("account_id"), req.body["site_id"])
    device = await scoped_device(req, _mac(req), lock=True)
    before = state_of(device)
    after = pnp.reprovision(before, t, owner_in_scope=True)
    write_back(device, after, ("associate", "activate"))
    notices = Notices()
    notices.add(before, after, ("associate",), req.actor.acting_id)
    await notices.queue(req.session, req.actor.login, req.now)  # NTF-1: Associating Device
    event(req, "reprovisioned", device.mac, before, after)
    req.audit_account = t.account_id
    req.audit_message = (
        f"reprovisioned {device.mac} (serial, thumbprint unchanged): "
        f"from {pnp.place_words(before.owner_id, before.site_id)} -> to {pnp.place_words(t.account_id, t.site_id)}"
    )
    return await detail_json(req, device)


def _check_certificate(ctx: ServerContext, pem: str, mac: str, serial: str) -> str:
    """The new device's factory certificate: trusted issuer, its CN and serialNumber; its thumbprint."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise invalid("invalid-certificate", "new_certificate is not a PEM X.509 certificate.") from None
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    sn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
    try:
        cn_mac = normalize_mac(cn[0]) if cn else None
    except DomainError:
        cn_mac = None
    if cn_mac != mac or sn[:1] != [serial]:
        raise invalid(
            "certificate-mismatch",
            "The certificate's CN and serialNumber must be the new MAC and serial (PROTOCOL §1).",
        )
    pki = ctx.pki
    issuers = (
        [] if pki is None else [pki.manufacturer_ca.certificate, *(c for t in pki.trusted for c in t.certificates)]
    )
    trusted = False
    for ca in issuers:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):  # not this CA
            continue
        trusted = True
        break
    if not trusted or (pki is not None and pki.is_revoked(cert)):
        raise invalid(
            "untrusted-certificate",
            "The certificate was not issued by a manufacturer CA this server trusts, or is revoked.",
        )
    return thumbprint_of(cert)


@api.route(
    "POST",
    "/pnp/devices/{mac}/replace",
    summary="Replace a faulty device by a new one (PNP-1): the new device takes its place, labels and history; "
    "the old certificate is denied in the same transaction",
    action="devices.associate_site",
    process="DEVICE",
    body=REPLACE,
    tag="pnp",
    responses={
        "409": {
            "description": "device-exists, serial-exists, certificate-in-use, certificate-denied, already-replaced"
        },
        "422": {"description": "invalid-certificate, certificate-mismatch, untrusted-certificate"},
    },
)
async def replace_device(req: Req) -> Any:
    old = await scoped_device(req, _mac(req), lock=True)
    new_mac = normalize_mac(req.body["new_mac"])
    new_serial = req.body["new_serial"]
    if new_mac == old.mac:
        raise invalid("same-device", "A replacement is a new device: give its new MAC address.", new_mac)
    if any(e.kind == "replaced" and e.mac == old.mac for e in await history(req, old.mac)):
        raise conflict("already-replaced", f"{old.mac} was replaced before.", old.mac)
    thumbprint = _check_certificate(req.ctx, req.body["new_certificate"], new_mac, new_serial)
    if await req.session.get(Device, new_mac) is not None:
        raise conflict("device-exists", f"A device {new_mac} exists already: a replacement is a new device.", new_mac)
    if await req.session.scalar(select(Device.mac).where(Device.serial == new_serial)) is not None:
        raise conflict("serial-exists", "A device with that serial number exists already.")
    if await req.session.scalar(select(Device.mac).where(Device.thumbprint == thumbprint)) is not None:
        raise conflict("certificate-in-use", "Another device has this factory certificate.", thumbprint)
    if await req.session.get(DeniedCertificate, thumbprint) is not None:
        raise conflict("certificate-denied", "This factory certificate is on the deny-list.", thumbprint)
    before = state_of(old)
    swap = pnp.replace_device(before, new_mac, new_serial, req.body.get("new_model"), owner_in_scope=True)
    new = Device(
        mac=new_mac,
        serial=new_serial,
        model=swap.new.model,
        product_id=old.product_id if swap.new.model == old.model else None,
        hardware=old.hardware if swap.new.model == old.model else None,
        thumbprint=thumbprint,
        approved=True,
        owner_id=swap.new.owner_id,
        previous_owner_id=swap.new.previous_owner_id,
        site_id=swap.new.site_id,
        associated=swap.new.associated,
        activated=swap.new.activated,
        synced=old.synced,
        imported_by=old.imported_by,
        created_at=req.now,
        **{
            name: swap.new.order.get(name)
            for name in ("reseller_order_id", "order_id", "shipment_carrier", "tracking_id", "aco_product_id")
        },
    )
    req.session.add(new)
    await req.session.flush()
    labels = list(await req.session.scalars(select(DeviceLabel.label_id).where(DeviceLabel.mac == old.mac)))
    await req.session.execute(delete(DeviceLabel).where(DeviceLabel.mac == old.mac))
    req.session.add_all(DeviceLabel(mac=new_mac, label_id=label_id) for label_id in labels)
    write_back(old, swap.old, ("release",))
    old.failed_attempts, old.locked_until = 0, None
    denied = None
    if old.thumbprint:
        denied = old.thumbprint.replace(":", "").upper()
        row = await req.session.get(DeniedCertificate, denied)
        reason = pnp.replaced_reason(new_mac)
        if row is None:
            req.session.add(
                DeniedCertificate(thumbprint=denied, reason=reason, denied_at=req.now, denied_by=req.actor.login)
            )
        else:
            row.reason = reason
    event(req, "replaced", old.mac, before, swap.new, other_mac=new_mac)
    await req.session.flush()
    req.audit_account = swap.new.owner_id
    req.audit_message = (
        f"replaced {old.mac} by {new_mac} at {pnp.place_words(swap.new.owner_id, swap.new.site_id)}: "
        f"{len(labels)} labels moved; old certificate denied ({pnp.replaced_reason(new_mac)})"
    )
    return {"old": await detail_json(req, old), "new": await detail_json(req, new), "denied_thumbprint": denied}
