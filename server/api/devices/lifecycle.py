"""Admin API, devices: running DEV-9 action sets on devices — the facts they need, per-device results —
and the lifecycle routes: associate, (de)activate, disassociate, release, unlock (DEV-4..6, LCK-2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices.lifecycle_state import state_of, write_back
from server.api.devices.notices import Notices
from server.api.devices.presentation import result
from server.api.devices.schemas import ASSOCIATE, CHUNK, MACS
from server.api.devices.visibility import _chunks, normalize_macs, scope_devices
from server.api.routing import Api, Req
from server.api.scope import in_subtree
from server.domain import devices as rules
from server.domain import lockout, permissions
from server.domain.errors import DomainError, not_found
from server.domain.permissions import PLATFORM
from server.store.links import is_linked
from server.store.models import Account, Device, Site

api = Api()


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
