"""Admin API: accounts (ACC-1..7, ACC-9, ACC-10, FW-3 switch)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope, subtree_clause
from server.domain import accounts as rules
from server.domain.errors import conflict, forbidden
from server.domain.inputs import NAME_PATTERN
from server.store.models import Account, Device, Site, Token, User

api = Api()

_OBJ = {
    "type": "object",
    "additionalProperties": {"type": ["string", "null"], "maxLength": 256, "pattern": NAME_PATTERN},
}

CREATE = {
    "type": "object",
    "required": ["type", "name"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["manufacturer", "service_provider", "reseller", "customer"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "bp_link_id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9-]{1,64}$"},
        "sap_id": {"type": ["string", "null"], "maxLength": 64, "pattern": NAME_PATTERN},
        "contact": _OBJ,
        "address": _OBJ,
    },
}
PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string"},  # refused by ACC-4 with its own error, not a schema error
        "name": CREATE["properties"]["name"],  # type: ignore[index]
        "bp_link_id": CREATE["properties"]["bp_link_id"],  # type: ignore[index]
        "sap_id": CREATE["properties"]["sap_id"],  # type: ignore[index]
        "contact": _OBJ,
        "address": _OBJ,
    },
}
SWITCH = {
    "type": "object",
    "required": ["enabled"],
    "additionalProperties": False,
    "properties": {"enabled": {"type": "boolean"}},
}
TWO_FACTOR = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {"enabled": {"type": "boolean"}, "for_children": {"type": "boolean"}},
}


def account_json(a: Account) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.type,
        "name": a.name,
        "parent_id": a.parent_id,
        "enabled": a.enabled,
        "bp_link_id": a.bp_link_id,
        "sap_id": a.sap_id,
        "contact": a.contact,
        "address": a.address,
        "firmware_upgrade": a.firmware_upgrade,
        "two_factor": a.two_factor,
        "two_factor_children": a.two_factor_children,
        "switch_approved": bool(a.switch_approved),  # ACC-9, set by the platform
        "created_at": a.created_at,
    }


async def _new_id(req: Req) -> str:
    for _ in range(20):
        candidate = rules.new_account_id()
        if await req.session.get(Account, candidate) is None:
            return candidate
    raise conflict("account-id-exhausted", "could not draw a free account ID")


@api.route(
    "POST",
    "/accounts",
    summary="Create a child account (ACC-1, ACC-2, ACC-3)",
    action="accounts.create",
    process="ACCOUNT",
    body=CREATE,
    status=201,
)
async def create_account(req: Req) -> Any:
    parent = await account_in_scope(req.session, req.actor, req.actor.acting_id)
    rules.check_may_create(rules.AccountType(parent.type), rules.AccountType(req.body["type"]))
    name = rules.validate_account_name(req.body["name"])
    acc = Account(
        id=await _new_id(req),
        type=req.body["type"],
        name=name,
        parent_id=parent.id,
        enabled=True,
        bp_link_id=req.body.get("bp_link_id"),
        sap_id=req.body.get("sap_id"),
        contact=req.body.get("contact"),
        address=req.body.get("address"),
        created_at=req.now,
    )
    acc.path = f"{parent.path}{acc.id}/"
    req.session.add(acc)
    req.audit_account = parent.id
    req.audit_message = f"created {acc.type} account {acc.id} '{name}'"
    await req.session.flush()
    return Reply(account_json(acc), 201)


@api.route(
    "GET",
    "/accounts",
    summary="List the accounts of your hierarchy (ACC-7)",
    action="accounts.read",
    process="ACCOUNT",
    query=(("type", "account type"), ("name", "contains")),
)
async def list_accounts(req: Req) -> Any:
    limit, offset = req.page()
    cond = [subtree_clause(req.actor, Account.path)]
    if t := req.query("type"):
        cond.append(Account.type == t)
    if n := req.query("name"):
        cond.append(Account.name.contains(n, autoescape=True))
    total = await req.session.scalar(select(func.count()).select_from(Account).where(*cond))
    rows = await req.session.scalars(select(Account).where(*cond).order_by(Account.path).limit(limit).offset(offset))
    return {"items": [account_json(a) for a in rows], "total": total}


@api.route("GET", "/accounts/{id}", summary="Read an account", action="accounts.read", process="ACCOUNT")
async def get_account(req: Req) -> Any:
    return account_json(await account_in_scope(req.session, req.actor, req.param("id")))


@api.route(
    "PATCH",
    "/accounts/{id}",
    summary="Update an account; its type never changes (ACC-4)",
    action="accounts.update",
    process="ACCOUNT",
    body=PATCH,
)
async def update_account(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    rules.check_patch(req.body, current_type=acc.type)
    if "name" in req.body:
        acc.name = rules.validate_account_name(req.body["name"])
    for key in ("bp_link_id", "sap_id", "contact", "address"):
        if key in req.body:
            setattr(acc, key, req.body[key])
    req.audit_account = acc.id
    req.audit_message = f"updated account {acc.id}: {', '.join(sorted(req.body))}"
    return account_json(acc)


def _descendant(req: Req, acc: Account) -> None:
    if acc.id == req.actor.acting_id:
        raise forbidden("own-account", "an administrator cannot do this to its own account")


@api.route(
    "DELETE",
    "/accounts/{id}",
    summary="Delete an account and, recursively, those it created (ACC-6)",
    action="accounts.delete",
    process="ACCOUNT",
)
async def delete_account(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    _descendant(req, acc)
    doomed = select(Account.id).where(Account.path.startswith(acc.path, autoescape=True))
    doomed_ids = set(await req.session.scalars(doomed))
    # ACC-6: devices return to the account that held them before (if it survives), else to the parent.
    held = list(await req.session.scalars(select(Device).where(Device.owner_id.in_(doomed_ids))))
    for dev in held:
        # None: no surviving previous holder, the device goes back to the unclaimed pool.
        dev.owner_id = rules.owner_after_deletion([dev.previous_owner_id] if dev.previous_owner_id else [], doomed_ids)
        dev.previous_owner_id = None
        dev.site_id = None
        dev.associated = False
        dev.activated = False
    await req.session.flush()
    await req.session.execute(update(Site).where(Site.account_id.in_(doomed_ids)).values(profile_id=None))
    await req.session.execute(
        delete(Account).where(Account.id.in_(doomed_ids)), execution_options={"synchronize_session": False}
    )
    req.audit_account = acc.parent_id
    req.audit_message = f"deleted account {acc.id} and {len(doomed_ids) - 1} descendants; {len(held)} devices returned"
    return {"deleted": sorted(doomed_ids), "devices_returned": len(held)}


async def _set_enabled(req: Req, enabled: bool) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    _descendant(req, acc)
    acc.enabled = enabled
    dissociated = 0
    if not enabled:
        # ACC-5: profiles and devices are dissociated; enabling restores logins only.
        await req.session.execute(update(Site).where(Site.account_id == acc.id).values(profile_id=None))
        devs = list(await req.session.scalars(select(Device).where(Device.owner_id == acc.id)))
        for dev in devs:
            dev.site_id, dev.associated, dev.activated = None, False, False
        dissociated = len(devs)
        await req.session.execute(
            delete(Token).where(Token.user_id.in_(select(User.id).where(User.account_id == acc.id)))
        )
    req.audit_account = acc.id
    req.audit_message = f"{'enabled' if enabled else 'disabled'} account {acc.id}"
    return {**account_json(acc), "devices_dissociated": dissociated}


@api.route(
    "POST", "/accounts/{id}/enable", summary="Enable an account (ACC-5)", action="accounts.enable", process="ACCOUNT"
)
async def enable_account(req: Req) -> Any:
    return await _set_enabled(req, True)


@api.route(
    "POST",
    "/accounts/{id}/disable",
    summary="Disable an account: blocks its logins, dissociates profiles and devices (ACC-5)",
    action="accounts.enable",
    process="ACCOUNT",
)
async def disable_account(req: Req) -> Any:
    return await _set_enabled(req, False)


@api.route(
    "PUT",
    "/accounts/{id}/firmware-upgrade",
    summary="Switch firmware upgrades for claimed devices on or off (FW-3; off by default)",
    action="accounts.firmware",
    process="ACCOUNT",
    body=SWITCH,
)
async def set_firmware_upgrade(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    acc.firmware_upgrade = req.body["enabled"]
    req.audit_account = acc.id
    req.audit_message = f"firmware upgrade {'on' if acc.firmware_upgrade else 'off'} for {acc.id}"
    return account_json(acc)


@api.route(
    "PUT",
    "/accounts/{id}/two-factor",
    summary="Two-factor authentication for an account, and for its resellers (ACC-10)",
    action="accounts.two_factor",
    process="ACCOUNT",
    body=TWO_FACTOR,
)
async def set_two_factor(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    if "for_children" in req.body:
        if acc.type != "service_provider":
            raise forbidden("two-factor-children", "only a service provider switches 2FA on for its resellers")
        acc.two_factor_children = req.body["for_children"]
    if "enabled" in req.body:
        acc.two_factor = req.body["enabled"]
    req.audit_account = acc.id
    req.audit_message = f"two-factor {acc.two_factor} (children {acc.two_factor_children}) for {acc.id}"
    return account_json(acc)


@api.route(
    "POST",
    "/accounts/{id}/switch-approval",
    summary="Platform approves a service provider to switch accounts (ACC-9)",
    action="accounts.switch_approve",
    process="ACCOUNT",
    body=SWITCH,
)
async def approve_switch(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    if acc.type != "service_provider":
        raise forbidden("switch-not-provider", "only service providers can be allowed to switch accounts")
    acc.switch_approved = req.body["enabled"]
    req.audit_account = acc.id
    req.audit_message = f"switch account {'approved' if acc.switch_approved else 'revoked'} for {acc.id}"
    return account_json(acc)
