"""Admin API, PNP-1: what the registration, QR and device modules share — the target of a
placement (ACC-7, DEV-4), the history entries and the device look-ups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from server.api.devices import device_json, labels_of, scope_devices, write_back
from server.api.routing import Req
from server.api.scope import in_subtree
from server.domain import devices as rules
from server.domain import permissions, pnp
from server.domain.errors import not_found
from server.store.models import Account, Device, PnpEvent, Site

ACCOUNT_ID = {"type": "string", "pattern": "^[0-9]{8}$"}
SITE_ID = {"type": "integer", "minimum": 1}
MAC = {"type": "string", "minLength": 1, "maxLength": 32}
SERIAL = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9-]*$"}
MODEL = {"type": "string", "minLength": 1, "maxLength": 16, "pattern": "^[A-Za-z0-9][A-Za-z0-9 ._-]*$"}
PLACE_ACTIONS = ("claim", "associate", "activate")


async def target(req: Req, account_id: str | None, site_id: int) -> pnp.Target:
    """DEV-4, ACC-7: the account (the actor's own, or one of its subtree) and its site with a
    profile; out of scope answers 404 like missing. Handing a device to another account needs
    `devices.associate` (a customer places devices at its own sites only), as for associate."""
    account_id = account_id or req.actor.acting_id
    account = await req.session.get(Account, account_id)
    if account is None or not in_subtree(req.actor, account.path):
        raise not_found("account-not-found", f"no account {account_id} in your hierarchy")
    if account.id != req.actor.acting_id:
        permissions.check(req.actor.role, "devices.associate")
    site = await req.session.get(Site, site_id)
    if site is None or site.account_id != account.id:
        raise not_found("site-not-found", f"account {account.id} has no site {site_id}")
    return pnp.Target(
        actor_account_id=req.actor.acting_id,
        account_id=account.id,
        account_is_child=account.id != req.actor.acting_id,
        site_id=site.id,
        site_has_profile=site.profile_id is not None,
    )


async def scoped_device(req: Req, mac: str, *, lock: bool = False) -> Device:
    """The device with this MAC in the actor's scope (ACC-7), else 404 like a missing one."""
    stmt = scope_devices(select(Device).where(Device.mac == mac), req.actor)
    if lock:
        stmt = stmt.with_for_update(of=Device)
    device = await req.session.scalar(stmt)
    if device is None:
        raise not_found("device-not-found", f"no device {mac} in your hierarchy")
    return device


def store_state(device: Device, after: rules.DeviceState, actions: tuple[str, ...] = PLACE_ACTIONS) -> None:
    write_back(device, after, actions)


def event(
    req: Req,
    kind: str,
    mac: str,
    before: rules.DeviceState | None,
    after: rules.DeviceState | None,
    other_mac: str | None = None,
) -> PnpEvent:
    row = PnpEvent(
        kind=kind,
        mac=mac,
        other_mac=other_mac,
        from_account=before.owner_id if before else None,
        from_site=before.site_id if before else None,
        to_account=after.owner_id if after else None,
        to_site=after.site_id if after else None,
        by_login=req.actor.login or "",
        at=req.now,
    )
    req.session.add(row)
    return row


def event_json(e: PnpEvent) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "mac": e.mac,
        "other_mac": e.other_mac,
        "from": {"account_id": e.from_account, "site_id": e.from_site},
        "to": {"account_id": e.to_account, "site_id": e.to_site},
        "by": e.by_login,
        "at": e.at,
    }


async def history(req: Req, mac: str) -> list[PnpEvent]:
    rows = await req.session.scalars(
        select(PnpEvent).where(or_(PnpEvent.mac == mac, PnpEvent.other_mac == mac)).order_by(PnpEvent.id)
    )
    return list(rows)


async def detail_json(req: Req, device: Device) -> dict[str, Any]:
    """GET /devices/{mac}'s answer plus the PNP-1 history: placements and the replacement link."""
    labels = (await labels_of(req.session, req.actor, [device.mac])).get(device.mac, [])
    body = device_json(device, labels, req.now)
    events = await history(req, device.mac)
    replaced_by = next((e.other_mac for e in events if e.kind == "replaced" and e.mac == device.mac), None)
    replaces = next((e.mac for e in events if e.kind == "replaced" and e.other_mac == device.mac), None)
    body["pnp"] = {"replaced_by": replaced_by, "replaces": replaces, "history": [event_json(e) for e in events]}
    return body
