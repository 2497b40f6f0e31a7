"""Admin API: two-step provisioning slots (FF-1) — an administrator prepares, the device reports in.

A slot says: the device with this MAC (or this serial number), of this model, is to become an
enrolled device of this customer account at this site. It stays `open` until that device reports
in over the device protocol (`POST /device/v1/enroll` with its factory certificate; the hook
`server.api.slots_hook`), which fills it: the device is claimed by the account, associated with
the site and activated in one step (as EC-7's code does), and the same request is answered as any
enrolled device's (ENR-2: `redirect`).

Decisions (docs/fleet-freedom.md has the contract):
- A slot's site is a site of the caller's subtree (ACC-7; otherwise 404 `site-not-found`) with a
  profile (422 `site-without-profile`, PRF-4); `account_id`, when given, is the site's account
  (422 `unknown-site`). `model` is a catalog model (422 `unknown-model`).
- Exactly one of `mac` and `serial` (422 `slot-target`); one open slot per MAC or serial
  (409 `slot-exists`). A filled slot stays as the record of how the device arrived.
- `DELETE /slots/{id}` withdraws an open slot (409 `slot-filled` for a filled one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.api.routing import Api, Reply, Req
from server.api.scope import in_subtree, subtree_clause
from server.domain import fleet_freedom
from server.domain.errors import bad_request, conflict, invalid, not_found
from server.store.models import Account, DeviceFamily, ProvisioningSlot, Site

api = Api()

STATES = ("open", "filled")


def slot_json(slot: ProvisioningSlot) -> dict[str, Any]:
    return {
        "id": slot.id,
        "account_id": slot.account_id,
        "site_id": slot.site_id,
        "model": slot.model,
        "mac": slot.mac,
        "serial": slot.serial,
        "state": "open" if slot.filled_at is None else "filled",
        "created_by": slot.created_by,
        "created_at": slot.created_at,
        "filled_at": slot.filled_at,
        "filled_mac": slot.filled_mac,
    }


async def _slot(req: Req) -> ProvisioningSlot:
    slot_id = req.int_param("id")
    row = (
        await req.session.execute(
            select(ProvisioningSlot, Account.path)
            .join(Account, Account.id == ProvisioningSlot.account_id)
            .where(ProvisioningSlot.id == slot_id)
        )
    ).first()
    if row is None or not in_subtree(req.actor, row.path):
        raise not_found("slot-not-found", f"no slot {slot_id} in your hierarchy")
    return row.ProvisioningSlot


@api.route(
    "POST",
    "/slots",
    summary="Prepare a slot for a device (FF-1 two-step): it is filled when that device reports in",
    action="fleet.slots",
    process="DEVICE",
    body=fleet_freedom.SLOT_SCHEMA,
    status=201,
    responses={
        "404": {"description": "site-not-found"},
        "409": {"description": "slot-exists: an open slot names that MAC or serial"},
        "422": {"description": "invalid-body, slot-target, invalid-mac, unknown-site, site-without-profile, "
                "unknown-model"},
    },
)
async def create_slot(req: Req) -> Any:
    body = req.body
    mac, serial = fleet_freedom.slot_target(body.get("mac"), body.get("serial"))
    row = (
        await req.session.execute(
            select(Site, Account).join(Account, Account.id == Site.account_id).where(Site.id == body["site_id"])
        )
    ).first()
    if row is None or not in_subtree(req.actor, row.Account.path):
        raise not_found("site-not-found", f"no site {body['site_id']} in your hierarchy")
    site, account = row.Site, row.Account
    if body.get("account_id", account.id) != account.id:
        raise invalid("unknown-site", f"The account {body['account_id']} has no site {site.id}.", site.id)
    if site.profile_id is None:
        raise invalid("site-without-profile", "The site has no profile; no device can enroll there (PRF-4).", site.id)
    if await req.session.get(DeviceFamily, body["model"]) is None:
        raise invalid("unknown-model", f"{body['model']!r} is no model of the device-family catalog.", body["model"])
    target = ProvisioningSlot.mac == mac if mac is not None else ProvisioningSlot.serial == serial
    taken = await req.session.scalar(
        select(ProvisioningSlot.id).where(target, ProvisioningSlot.filled_at.is_(None)).limit(1)
    )
    if taken is not None:
        raise conflict("slot-exists", f"The open slot {taken} names that device already.", mac or serial)
    slot = ProvisioningSlot(
        account_id=account.id,
        site_id=site.id,
        model=body["model"],
        mac=mac,
        serial=serial,
        created_by=req.actor.login,
        created_at=req.now,
    )
    req.session.add(slot)
    await req.session.flush()
    req.audit_account = account.id
    named = f"MAC {mac}" if mac else "serial ****"  # a serial is a claim proof (DEV-3): not in the log
    req.audit_message = f"slot {slot.id} prepared at site {site.id} for a {slot.model} with {named}"
    return Reply(slot_json(slot), 201)


@api.route(
    "GET",
    "/slots",
    summary="The slots of your hierarchy, newest first; `state=open` shows the never filled (FF-1)",
    action="fleet.slots",
    process="DEVICE",
    query=(("state", "open | filled"), ("account", "only this account's slots")),
)
async def list_slots(req: Req) -> Any:
    limit, offset = req.page()
    stmt = select(ProvisioningSlot).join(Account, Account.id == ProvisioningSlot.account_id)
    stmt = stmt.where(subtree_clause(req.actor, Account.path))
    state = req.query("state")
    if state is not None:
        if state not in STATES:
            raise bad_request("invalid-state", "state must be open or filled", state[:20])
        filled = ProvisioningSlot.filled_at
        stmt = stmt.where(filled.is_(None) if state == "open" else filled.is_not(None))
    account = req.query("account")
    if account is not None:
        stmt = stmt.where(ProvisioningSlot.account_id == account)
    total = await req.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await req.session.scalars(stmt.order_by(ProvisioningSlot.id.desc()).limit(limit).offset(offset))
    return {"items": [slot_json(s) for s in rows], "total": int(total or 0)}


@api.route("GET", "/slots/{id}", summary="One slot (FF-1)", action="fleet.slots", process="DEVICE")
async def get_slot(req: Req) -> Any:
    return slot_json(await _slot(req))


@api.route(
    "DELETE",
    "/slots/{id}",
    summary="Withdraw an open slot (FF-1)",
    action="fleet.slots",
    process="DEVICE",
    responses={"409": {"description": "slot-filled: a filled slot is the record of the device's arrival"}},
)
async def delete_slot(req: Req) -> Any:
    slot = await _slot(req)
    if slot.filled_at is not None:
        raise conflict("slot-filled", f"Slot {slot.id} was filled by {slot.filled_mac}; it stays as the record.")
    req.audit_account = slot.account_id
    req.audit_message = f"slot {slot.id} withdrawn"
    await req.session.delete(slot)
    return {"deleted": slot.id}
