"""Admin API, devices: claiming with proof of possession (DEV-3, issue 13) — MAC and serial, label codes,
an account's claim policy and the claiming account's failure budget."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.devices.lifecycle import _load, _missing, action_context, all_failed, run_lifecycle
from server.api.devices.presentation import device_json, result
from server.api.devices.schemas import CLAIM, CLAIM_POLICY, LABEL_CODES, TOO_MANY_CLAIMS
from server.api.routing import Api, Req
from server.api.scope import account_in_scope
from server.domain import claim_proof
from server.domain.errors import DomainError, too_many
from server.domain.identity import normalize_mac
from server.store.models import Account, Device

api = Api()


@api.route(
    "POST",
    "/devices/claim",
    summary=(
        "Claim a device by its MAC and the serial number printed on its box (DEV-3), and its label "
        "code where it has one or your account requires one; a wrong combination answers like an "
        "unknown device (404 device-not-found) and counts toward your account's failure budget "
        "(429 too-many-attempts with Retry-After)"
    ),
    action="devices.claim",
    process="DEVICE",
    body=CLAIM,
    responses=TOO_MANY_CLAIMS,
)
async def claim_device(req: Req) -> Any:
    mac = normalize_mac(req.body["mac"])
    serial = req.body["serial"]
    label_code = req.body.get("label_code")
    if label_code is not None:
        label_code = claim_proof.normalize_label_code(label_code)
    claimant = req.actor.acting_id
    check_claim_budget(req)
    code_required = await label_code_required_for(req.session, claimant)
    if code_required and label_code is None:
        raise claim_proof.label_code_required()
    # One statement whatever the answer: the rows with this MAC or this serial (0, 1 or 2).
    found = list(await req.session.scalars(select(Device).where(or_(Device.mac == mac, Device.serial == serial))))
    device = next((d for d in found if d.mac == mac), None)
    proven = claim_proof.matches(
        mac,
        serial,
        label_code,
        device.mac if device else None,
        device.serial if device else None,
        device.label_code_hash if device else None,
        code_required,
    )
    if not proven or device is None:
        req.ctx.claims.record(claimant, req.now)
        raise claim_proof.no_match(mac)
    ctx = await action_context(req.session, req.actor, ["claim"])
    answer = await run_lifecycle(req, [device.mac], ["claim"], ctx, scoped=False)
    answer["device"] = device_json(device, [], req.now)
    return answer


def check_claim_budget(req: Req) -> None:
    """DEV-3: refuse (429 too-many-attempts, Retry-After) while the claiming account's failure budget
    is spent; asked before any look-up, so a spent budget tells nothing about a device. Claim jobs
    (`server.api.jobs.proof`) ask it too: one budget for every way of claiming."""
    wait = req.ctx.claims.retry_after(req.actor.acting_id, req.now)
    if wait is not None:
        raise too_many_claims(wait)


def too_many_claims(wait: int) -> DomainError:
    return too_many(
        "too-many-attempts",
        f"Too many claims with a wrong MAC, serial number or label code; try again in {wait} s.",
        wait,
    )


async def label_code_required_for(session: AsyncSession, account_id: str) -> bool:
    """DEV-3: does this account, or an account above it, require label codes for its claims?"""
    account = await session.get(Account, account_id)
    if account is None:
        return False
    ids = [part for part in account.path.split("/") if part]
    required = await session.scalar(
        select(func.count()).select_from(Account).where(Account.id.in_(ids), Account.label_code_required.is_(True))
    )
    return bool(required)


@api.route(
    "POST",
    "/devices/label-codes",
    summary=(
        "Add label codes to devices you imported (DEV-3 claim proof; manufacturer or platform): "
        "each device is then claimed only with its label code; kept as a hash, never shown"
    ),
    action="devices.label_codes",
    process="DEVICE",
    body=LABEL_CODES,
)
async def set_label_codes(req: Req) -> Any:
    given: dict[str, str] = {}
    for item in req.body["codes"]:
        mac = normalize_mac(item["mac"])
        given[mac] = claim_proof.normalize_label_code(item["label_code"], mac)
    rows = await _load(req.session, req.actor, list(given))
    results = []
    for mac, code in given.items():
        row = rows.get(mac)
        if row is None:
            results.append(result(mac, _missing(mac)))
            continue
        row.label_code_hash = claim_proof.label_code_hash(mac, code)
        results.append(result(mac))
    failed = sum(r["status"] == "FAIL" for r in results)
    if failed == len(results):
        raise all_failed([_missing(r["mac"]) for r in results], results)
    req.audit_message = f"label codes set for {len(results) - failed} devices"
    return {"results": results, "summary": {"succeeded": len(results) - failed, "failed": failed}}


@api.route(
    "GET",
    "/accounts/{id}/claim-policy",
    summary="An account's claim policy (DEV-3): does it, or an account above it, require label codes in claims",
    action="accounts.read",
    process="ACCOUNT",
)
async def get_claim_policy(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    return await _claim_policy_json(req.session, acc)


@api.route(
    "PUT",
    "/accounts/{id}/claim-policy",
    summary="Require a label code in every claim of this account and its subtree (DEV-3; off by default)",
    action="accounts.claim_policy",
    process="ACCOUNT",
    body=CLAIM_POLICY,
)
async def set_claim_policy(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    acc.label_code_required = req.body["label_code_required"]
    req.audit_account = acc.id
    req.audit_message = f"label codes {'required' if acc.label_code_required else 'not required'} in claims of {acc.id}"
    await req.session.flush()
    return await _claim_policy_json(req.session, acc)


async def _claim_policy_json(session: AsyncSession, acc: Account) -> dict[str, Any]:
    return {
        "account_id": acc.id,
        "label_code_required": bool(acc.label_code_required),
        "effective": await label_code_required_for(session, acc.id),
    }
