"""Admin API: direct addition of devices by reporting id (FF-1) — for devices that cannot report in.

`merge` is the one operation behind both doors: `POST /direct-devices` here and the
`mergeProvider` WebSocket message (`server.api.merge_provider`). Without `v` it adds, with `v`
it updates that version (optimistic concurrency); the answer carries the device's new version.

Decisions (docs/fleet-freedom.md has the contract):
- An addition creates the device record (MAC = the reporting id, model = `kind`, owner = the
  `company` account, at `site_id` when given: associated with it), its version 1, one billing
  ledger entry, and the audit entry `device.direct-add` (process DEVICE, under the company) —
  all in one transaction. Without `serial` the device's serial is its reporting id.
- A directly added device has no factory-certificate thumbprint, so it never enrolls over the
  device protocol (ENR-1 answers `unknown_device`); it is the company's, not activated.
- `company` is an account of the caller's subtree (ACC-7; otherwise 404 `account-not-found`) that
  holds devices: a service provider, reseller or customer, enabled. `kind` is a model of the
  device-family catalog (422 `unknown-kind`). A `site_id` is a site of the company with a
  profile (422 `unknown-site`, `site-without-profile`, as DEV-4's association).
- An update changes `kind`, `serial` and `site_id` (null: no site); `company` must be the
  device's account (409 `company-mismatch`: moving a device is PNP-1 reprovisioning). A stale
  `v` is 409 `stale-version` with `current_v`; the write is conditional on the version, so two
  updates of one version never both succeed. Updates are audited `device.direct-update`, not billed.
- `DELETE /direct-devices/{mac}` deletes a directly added device (and its labels); its billing
  entry stays.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope, in_subtree, subtree_clause
from server.context import ServerContext
from server.domain import billing, fleet_freedom
from server.domain.errors import DomainError, conflict, invalid, not_found
from server.domain.fleet_freedom import ADD, Merge
from server.domain.identity import normalize_mac
from server.domain.permissions import CUSTOMER, RESELLER, SP
from server.store.audit import write_audit
from server.store.models import Account, BillingEntry, Device, DeviceFamily, DirectDevice, Site

api = Api()

_COMPANIES = frozenset({SP, RESELLER, CUSTOMER})
FLAG_ADD = "device.direct-add"
FLAG_UPDATE = "device.direct-update"
PROVIDER_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"enum": [fleet_freedom.ADD, fleet_freedom.UPDATE]},
        "provider": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string"},
                "company": {"type": "string"},
                "serial": {"type": "string"},
                "site_id": {"type": ["integer", "null"]},
                "v": {"type": "integer"},
                "added_at": {"type": "string"},
                "added_by": {"type": "string"},
                "added_via": {"type": "string"},
            },
        },
    },
}


def provider_json(device: Device, direct: DirectDevice) -> dict[str, Any]:
    return {
        "id": device.mac,
        "kind": device.model,
        "company": device.owner_id,
        "serial": device.serial,
        "site_id": device.site_id,
        "v": direct.version,
        "added_at": direct.added_at,
        "added_by": direct.added_by,
        "added_via": direct.added_via,
    }


async def merge(
    session: AsyncSession, ctx: ServerContext, actor: Actor, provider: dict[str, Any], *, via: str,
    client_host: str | None,
) -> tuple[dict[str, Any], str]:
    """FF-1 `mergeProvider`: add (no `v`) or update (`v`) in the caller's transaction; the
    answer ({action, provider}) and the account it concerns."""
    request = fleet_freedom.parse_merge(provider)
    if request.mode == ADD:
        answer = await _add(session, ctx, actor, request, provider, via=via, client_host=client_host)
    else:
        answer = await _update(session, ctx, actor, request, provider, client_host=client_host)
    return answer, request.company


async def _company(session: AsyncSession, actor: Actor, account_id: str) -> Account:
    company = await account_in_scope(session, actor, account_id)
    if company.type not in _COMPANIES:
        raise invalid(
            "not-a-company",
            "Devices are added to a service provider, reseller or customer account.",
            account_id,
        )
    if not company.enabled:
        raise invalid("disabled-account", f"The account {account_id} is disabled (ACC-5).", account_id)
    return company


async def _check_kind(session: AsyncSession, kind: str) -> None:
    if await session.get(DeviceFamily, kind) is None:
        raise invalid("unknown-kind", f"{kind!r} is no model of the device-family catalog (FW-1).", kind)


async def _check_site(session: AsyncSession, company: Account, site_id: int | None) -> None:
    if site_id is None:
        return
    site = await session.get(Site, site_id)
    if site is None or site.account_id != company.id:
        raise invalid("unknown-site", f"The account {company.id} has no site {site_id}.", site_id)
    if site.profile_id is None:
        raise invalid(
            "site-without-profile", "The site has no profile; devices cannot be associated with it (DEV-4).", site_id
        )


async def _serial_free(session: AsyncSession, serial: str, mac: str) -> None:
    holder = await session.scalar(select(Device.mac).where(Device.serial == serial))
    if holder is not None and holder != mac:
        raise conflict("serial-taken", "A device with that serial number exists.", serial)


async def _add(
    session: AsyncSession, ctx: ServerContext, actor: Actor, m: Merge, provider: dict[str, Any], *, via: str,
    client_host: str | None,
) -> dict[str, Any]:
    company = await _company(session, actor, m.company)
    await _check_kind(session, m.kind)
    await _check_site(session, company, m.site_id)
    existing = await session.get(Device, m.mac)
    if existing is not None:
        direct = await session.get(DirectDevice, m.mac)
        owner = await session.get(Account, existing.owner_id) if existing.owner_id else None
        visible = direct is not None and owner is not None and in_subtree(actor, owner.path)
        raise fleet_freedom.exists_error(m.mac, direct.version if visible and direct else None)
    serial = m.serial or m.mac
    await _serial_free(session, serial, m.mac)
    now = ctx.clock()
    device = Device(
        mac=m.mac,
        serial=serial,
        model=m.kind,
        approved=False,
        owner_id=company.id,
        site_id=m.site_id,
        associated=m.site_id is not None,
        activated=False,
        imported_by=company.id,
        created_at=now,
    )
    direct = DirectDevice(mac=m.mac, version=1, added_by=actor.login, added_via=via, added_at=now, updated_at=now)
    session.add(device)
    await _flush(session, m.mac)
    session.add(direct)
    session.add(
        BillingEntry(
            account_id=company.id,
            account_path=company.path,
            month=billing.month_of(now),
            mac=m.mac,
            kind=m.kind,
            via=via,
            added_by=actor.login,
            added_at=now,
        )
    )
    await _flush(session, m.mac)
    await write_audit(
        session, ctx, actor, process="DEVICE", action=FLAG_ADD, status="SUCCESS", client_host=client_host,
        account_id=company.id,
        message=f"direct addition (billable) of {m.mac} ({m.kind}) to account {company.id} via {via}, version 1",
    )
    return {"action": fleet_freedom.ADD, "provider": provider_json(device, direct)}


async def _flush(session: AsyncSession, mac: str) -> None:
    try:
        await session.flush()
    except IntegrityError:  # a concurrent addition of the same MAC or serial won
        raise conflict("device-exists", f"A device with MAC {mac} or its serial exists.", mac) from None


async def direct_in_scope(session: AsyncSession, actor: Actor, mac: str) -> tuple[Device, DirectDevice]:
    """ACC-7: a directly added device held in the actor's subtree (else 404 `provider-not-found`)."""
    row = (
        await session.execute(
            select(Device, DirectDevice, Account.path)
            .join(DirectDevice, DirectDevice.mac == Device.mac)
            .join(Account, Account.id == Device.owner_id)
            .where(Device.mac == mac)
        )
    ).first()
    if row is None or not in_subtree(actor, row.path):
        raise not_found("provider-not-found", f"No directly added device {mac} in your hierarchy.")
    return row.Device, row.DirectDevice


async def _update(
    session: AsyncSession, ctx: ServerContext, actor: Actor, m: Merge, provider: dict[str, Any], *,
    client_host: str | None,
) -> dict[str, Any]:
    device, direct = await direct_in_scope(session, actor, m.mac)
    if device.owner_id != m.company:
        raise DomainError(
            "company-mismatch",
            f"The device belongs to account {device.owner_id}; moving it to another account is "
            "reprovisioning (PNP-1), not an update.",
            409,
            m.company,
        )
    assert m.version is not None
    new = fleet_freedom.check_version(direct.version, m.version)
    company = await _company(session, actor, m.company)
    await _check_kind(session, m.kind)
    site_id = provider.get("site_id", device.site_id)
    await _check_site(session, company, site_id)
    if m.serial is not None:
        await _serial_free(session, m.serial, m.mac)
    now = ctx.clock()
    won = await session.execute(
        update(DirectDevice)
        .where(DirectDevice.mac == m.mac, DirectDevice.version == m.version)
        .values(version=new, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]  # another update of this version won
        current = await session.scalar(select(DirectDevice.version).where(DirectDevice.mac == m.mac))
        fleet_freedom.check_version(int(current or 0), m.version)
    await session.refresh(direct)
    device.model = m.kind
    if m.serial is not None:
        device.serial = m.serial
    device.site_id = site_id
    device.associated = site_id is not None
    await _flush(session, m.mac)
    await write_audit(
        session, ctx, actor, process="DEVICE", action=FLAG_UPDATE, status="SUCCESS", client_host=client_host,
        account_id=company.id,
        message=f"direct device {m.mac} ({m.kind}) updated from version {m.version} to {new}",
    )
    return {"action": fleet_freedom.UPDATE, "provider": provider_json(device, direct)}


@api.route(
    "POST",
    "/direct-devices",
    summary="Add a device directly by its reporting id, or update it with its version `v` (FF-1 mergeProvider)",
    action="fleet.direct_add",
    process="DEVICE",
    body=fleet_freedom.PROVIDER_SCHEMA,
    status=201,
    answer=PROVIDER_ANSWER,
    responses={
        "200": {
            "description": "updated (the body had `v`): the device with its new version",
            "content": {"application/json": {"schema": PROVIDER_ANSWER}},
        },
        "404": {"description": "account-not-found, provider-not-found (update of a device not added directly)"},
        "409": {"description": "device-exists, serial-taken, stale-version (with current_v), company-mismatch"},
        "422": {"description": "invalid-body, invalid-mac, unknown-kind, unknown-site, site-without-profile, "
                "not-a-company, disabled-account"},
    },
)
async def merge_direct_device(req: Req) -> Any:
    answer, company = await merge(
        req.session, req.ctx, req.actor, req.body, via=fleet_freedom.VIA_REST, client_host=req.client_host
    )
    req.audit_account = company
    provider = answer["provider"]
    req.audit_message = f"mergeProvider {provider['id']}: {answer['action']}, version {provider['v']}"
    return Reply(answer, 201 if answer["action"] == fleet_freedom.ADD else 200)


@api.route(
    "GET",
    "/direct-devices",
    summary="The directly added devices of your hierarchy, newest first (FF-1)",
    action="devices.read",
    process="DEVICE",
    query=(("company", "only this account's"),),
)
async def list_direct_devices(req: Req) -> Any:
    limit, offset = req.page()
    stmt = (
        select(Device, DirectDevice)
        .join(DirectDevice, DirectDevice.mac == Device.mac)
        .join(Account, Account.id == Device.owner_id)
        .where(subtree_clause(req.actor, Account.path))
    )
    company = req.query("company")
    if company is not None:
        stmt = stmt.where(Device.owner_id == company)
    total = await req.session.scalar(select(func.count()).select_from(stmt.subquery()))
    stmt = stmt.order_by(DirectDevice.added_at.desc(), Device.mac).limit(limit).offset(offset)
    rows = await req.session.execute(stmt)
    return {"items": [provider_json(r.Device, r.DirectDevice) for r in rows], "total": int(total or 0)}


def _mac(req: Req) -> str:
    try:
        return normalize_mac(req.param("mac"))
    except DomainError:
        raise not_found("provider-not-found", f"No directly added device {req.param('mac')[:40]!r}.") from None


@api.route(
    "GET",
    "/direct-devices/{mac}",
    summary="One directly added device with its version (FF-1)",
    action="devices.read",
    process="DEVICE",
)
async def get_direct_device(req: Req) -> Any:
    device, direct = await direct_in_scope(req.session, req.actor, _mac(req))
    return provider_json(device, direct)


@api.route(
    "DELETE",
    "/direct-devices/{mac}",
    summary="Delete a directly added device; its billing entry stays (FF-1)",
    action="fleet.direct_add",
    process="DEVICE",
)
async def delete_direct_device(req: Req) -> Any:
    device, direct = await direct_in_scope(req.session, req.actor, _mac(req))
    req.audit_account = device.owner_id
    req.audit_message = f"direct device {device.mac} ({device.model}) deleted at version {direct.version}"
    # Core deletes: the database cascades (labels, the version row); the billing ledger has no key to it
    await req.session.execute(delete(DirectDevice).where(DirectDevice.mac == device.mac))
    await req.session.execute(delete(Device).where(Device.mac == device.mac))
    return {"deleted": device.mac}

