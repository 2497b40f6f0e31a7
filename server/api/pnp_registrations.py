"""Admin API, PNP-1 pre-registration: a device's onboarding data (MAC, serial, model; the target
account and site) registered before the device is at hand, so it enrolls on first contact.

Decisions (docs/pnp.md):
- One call registers up to MAX_DEVICES devices for one account and site, as a job (kind
  `pnp-registration`, run in the request, one result per device). Per device: `ready` (an
  imported, approved device with this MAC and serial: claimed, associated with the site and
  activated now), `already-placed`, `pending` (not imported or not approved yet: kept, placed by
  its approval, or else by a later `POST /pnp/registrations/apply`), or refused (`not-proven`,
  `held-elsewhere`, `invalid` for a MAC named twice, `registered-elsewhere` for a MAC an account
  outside the caller's hierarchy registered, `too-many-attempts`) — a refused device writes
  nothing of its own.
- A registration claims, so it proves possession as `POST /devices/claim` does (DEV-3, issue 13):
  MAC and serial, plus the label code where the device has one or the registrant's account
  requires one (then every device of the call needs one: 422 `label-code-required` before any
  look-up). The label code is kept as its hash (`claim_proof.label_code_hash`) until the device
  is placed, never shown. A wrong proof is `not-proven` whichever part was wrong, and one failure
  of the registrant's claim budget (shared with claims: a spent budget refuses the call, 429
  `too-many-attempts`, and the devices after it in a call). A MAC not imported yet is `pending`
  and costs nothing: that is what pre-registration is for.
- Whole-call refusals (body, account or site out of scope, site without a profile) write nothing.
- An apply carries out what the registrants asked for, on their behalf (claim by the registrant,
  association with its target): any administrator who sees the registrations may run it
  (`devices.read`), so the platform can right after approving the devices.
- Registering a MAC again replaces its pending registration (the last word on where it goes);
  a placed device's registration is kept as it was (`ready`), and the device's place changes only
  through reprovisioning.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.api.devices import Notices, state_of
from server.api.devices.claim import check_claim_budget, label_code_required_for, too_many_claims
from server.api.devices.visibility import normalize_macs
from server.api.pnp_common import ACCOUNT_ID, MAC, MODEL, PLACE_ACTIONS, SERIAL, SITE_ID, event, store_state, target
from server.api.routing import Api, Req
from server.api.scope import subtree_clause
from server.domain import claim_proof, pnp
from server.domain.errors import DomainError, invalid
from server.domain.identity import normalize_mac
from server.store.models import Account, Device, Job, JobResult, PnpRegistration, Site

api = Api()
MAX_DEVICES = 5000

REGISTER = {
    "type": "object",
    "required": ["site_id", "devices"],
    "additionalProperties": False,
    "properties": {
        "account_id": ACCOUNT_ID,
        "site_id": SITE_ID,
        "devices": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_DEVICES,
            "items": {
                "type": "object",
                "required": ["mac", "serial"],
                "additionalProperties": False,
                "properties": {
                    "mac": MAC,
                    "serial": {**SERIAL, "writeOnly": True},
                    "model": MODEL,
                    "label_code": {"type": "string", "minLength": 1, "maxLength": 64, "writeOnly": True},
                },
            },
        },
    },
}
APPLY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"macs": {"type": "array", "items": MAC, "minItems": 1, "maxItems": MAX_DEVICES}},
}


def registration_json(r: PnpRegistration) -> dict[str, Any]:
    return {
        "mac": r.mac,
        "model": r.model,
        "account_id": r.account_id,
        "site_id": r.site_id,
        "status": r.status,
        "detail": r.detail,
        "registered_by": r.registered_by,
        "created_at": r.created_at,
        "applied_at": r.applied_at,
    }


async def _apply_one(
    req: Req, reg: PnpRegistration, device: Device | None, t: pnp.Target, code_required: bool, notices: Notices
) -> tuple[str, str | None]:
    """Place one registered device now when it can be; the outcome and its detail. A wrong proof
    is one failure of the registrant's claim budget."""
    state = state_of(device) if device is not None else None
    proof = pnp.Proof(reg.serial, reg.label_code_hash, code_required)
    outcome, detail = pnp.register_outcome(state, proof, device.label_code_hash if device else None, t)
    if outcome == "not-proven":
        req.ctx.claims.record(reg.registrant_id, req.now)
    if outcome == "ready" and device is not None and state is not None:
        after = pnp.place(state, t)
        store_state(device, after)
        notices.add(state, after, PLACE_ACTIONS, t.actor_account_id)
        event(req, "preregistered", device.mac, state, after)
    if outcome in pnp.PLACED:
        reg.status, reg.detail, reg.applied_at = "ready", None, req.now
        reg.label_code_hash = None  # the proof has served
    else:  # still pending: why, for the list (a refused device's outcome is its detail)
        reg.status, reg.detail = "pending", detail if outcome == "pending" else f"{outcome}: {detail}"
    return outcome, detail


def _label_codes(devices: list[dict[str, Any]], macs: list[str], code_required: bool) -> list[str | None]:
    """Each device's label code hash (None: none given); the whole call is refused for a malformed
    one, or a missing one under a policy requiring them — before any look-up, never quoting a code."""
    hashes: list[str | None] = []
    for item, mac in zip(devices, macs, strict=True):
        code = item.get("label_code")
        if code is None:
            if code_required:
                raise claim_proof.label_code_required()
            hashes.append(None)
            continue
        hashes.append(claim_proof.label_code_hash(mac, claim_proof.normalize_label_code(code, mac)))
    return hashes


@api.route(
    "POST",
    "/pnp/registrations",
    summary="Pre-register devices' onboarding data for an account's site (PNP-1): placed now when imported "
    "and approved, else pending; a job with one result per device",
    action="devices.associate_site",
    process="DEVICE",
    body=REGISTER,
    tag="pnp",
    responses={
        "404": {"description": "account-not-found, site-not-found (out of your hierarchy answers the same)"},
        "422": {"description": "invalid-body, invalid-mac, no-profile"},
    },
)
async def register_devices(req: Req) -> Any:
    devices = req.body["devices"]
    macs = [normalize_mac(d["mac"]) for d in devices]  # one malformed MAC refuses the call
    check_claim_budget(req)
    code_required = await label_code_required_for(req.session, req.actor.acting_id)
    code_hashes = _label_codes(devices, macs, code_required)
    t = await target(req, req.body.get("account_id"), req.body["site_id"])
    if not t.site_has_profile:
        raise invalid("no-profile", "The site has no profile: its devices could not enroll (PRF-4).", t.site_id)
    found = {d.mac: d for d in await req.session.scalars(select(Device).where(Device.mac.in_(macs)).with_for_update())}
    known = {r.mac: r for r in await req.session.scalars(select(PnpRegistration).where(PnpRegistration.mac.in_(macs)))}
    registrants = set(
        await req.session.scalars(
            select(Account.id).where(
                Account.id.in_({r.registrant_id for r in known.values()}), subtree_clause(req.actor, Account.path)
            )
        )
    )
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    notices = Notices()
    for item, mac, code_hash in zip(devices, macs, code_hashes, strict=True):
        if mac in seen:
            results.append(
                {"mac": mac, "outcome": "invalid", "detail": "duplicate-in-request: this MAC is named twice"}
            )
            continue
        seen.add(mac)
        device = found.get(mac)
        reg = known.get(mac)
        if reg is not None and reg.status == "ready" and device is not None and device.owner_id is not None:
            placed_before = "registered and placed before; move it by reprovisioning"
            results.append({"mac": mac, "outcome": "already-placed", "detail": placed_before})
            continue
        if reg is not None and reg.registrant_id not in registrants:
            elsewhere = "another account (outside your hierarchy) registered this device"
            results.append({"mac": mac, "outcome": "registered-elsewhere", "detail": elsewhere})
            continue
        if device is not None:
            wait = req.ctx.claims.retry_after(req.actor.acting_id, req.now)
            if wait is not None:  # spent during this call: not tried, whatever the device
                results.append({"mac": mac, "outcome": "too-many-attempts", "detail": too_many_claims(wait).detail})
                continue
        state = state_of(device) if device is not None else None
        proof = pnp.Proof(item["serial"], code_hash, code_required)
        outcome, detail = pnp.register_outcome(state, proof, device.label_code_hash if device else None, t)
        if outcome not in (*pnp.PLACED, "pending"):
            if outcome == "not-proven":
                req.ctx.claims.record(req.actor.acting_id, req.now)
            results.append({"mac": mac, "outcome": outcome, "detail": detail})
            continue
        if reg is None:
            reg = PnpRegistration(mac=mac, created_at=req.now)
            req.session.add(reg)
        reg.serial, reg.model = item["serial"], item.get("model") or (device.model if device else None)
        reg.label_code_hash = code_hash
        reg.account_id, reg.site_id = t.account_id, t.site_id
        reg.registrant_id, reg.registered_by = req.actor.acting_id, req.actor.login
        outcome, detail = await _apply_one(req, reg, device, t, code_required, notices)
        results.append({"mac": mac, "outcome": outcome, "detail": detail})
    await notices.queue(req.session, req.actor.login, req.now)  # NTF-1: Claiming / Associating Device
    job = await _job(req, "pnp registration", results, {"account_id": t.account_id, "site_id": t.site_id})
    summary = job.summary
    req.audit_account = t.account_id
    req.audit_message = (
        f"pre-registered {len(results)} devices for {pnp.place_words(t.account_id, t.site_id)}: "
        f"{summary['ready']} placed, {summary['pending']} pending, {summary['failed']} refused, job {job.id}"
    )
    return {"job_id": job.id, "status": job.status, "summary": summary, "results": results}


async def _job(req: Req, name: str, results: list[dict[str, Any]], params: dict[str, Any]) -> Job:
    """The registration as a job (DEV-10): COMPLETE when no device was refused."""
    counts = {"total": len(results), "ready": 0, "pending": 0, "failed": 0}
    for r in results:
        key = "ready" if r["outcome"] in pnp.PLACED else "pending" if r["outcome"] == "pending" else "failed"
        counts[key] += 1
    now = req.now
    job = Job(
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        name=name[:128],
        kind="pnp-registration",
        actions=["pre-register"],
        params=params,
        status="FAIL" if counts["failed"] else "COMPLETE",
        summary=counts,
        created_at=now,
        finished_at=now,
    )
    req.session.add(job)
    await req.session.flush()
    req.session.add_all(
        JobResult(
            job_id=job.id,
            subject=r["mac"],
            status="FAIL" if r["outcome"] not in (*pnp.PLACED, "pending") else "SUCCESS",
            reason=r["outcome"],
            detail=r["detail"],
        )
        for r in results
    )
    return job


def _in_scope(req: Req) -> Any:
    """ACC-7: registrations made by an account of the actor's subtree, or for one."""
    registrant = select(Account.id).where(subtree_clause(req.actor, Account.path))
    return PnpRegistration.registrant_id.in_(registrant) | PnpRegistration.account_id.in_(registrant)


@api.route(
    "GET",
    "/pnp/registrations",
    summary="Pre-registrations of your hierarchy (PNP-1); ?status=pending|ready",
    action="devices.read",
    process="DEVICE",
    tag="pnp",
    query=(("status", "pending or ready"),),
)
async def list_registrations(req: Req) -> Any:
    limit, offset = req.page()
    stmt = select(PnpRegistration).where(_in_scope(req))
    status = req.query("status")
    if status is not None:
        if status not in ("pending", "ready"):
            raise invalid("invalid-status", "status is pending or ready", status[:20])
        stmt = stmt.where(PnpRegistration.status == status)
    total = await req.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await req.session.scalars(stmt.order_by(PnpRegistration.id).limit(limit).offset(offset))
    return {"items": [registration_json(r) for r in rows], "total": int(total or 0)}


@api.route(
    "POST",
    "/pnp/registrations/apply",
    summary="Place the pending pre-registered devices that are imported and approved by now (PNP-1): the "
    "registrants' own requests, for any administrator who sees them (the platform after approving)",
    action="devices.read",
    process="DEVICE",
    body=APPLY,
    tag="pnp",
)
async def apply_registrations(req: Req) -> Any:
    macs = normalize_macs(req.body["macs"]) if "macs" in req.body else None
    results = await place_pending(req, macs, scoped=True)
    placed = sum(r["outcome"] in pnp.PLACED for r in results)
    req.audit_message = f"applied pre-registrations: {placed} of {len(results)} pending devices placed"
    return {"results": results, "summary": {"total": len(results), "ready": placed, "pending": len(results) - placed}}


async def place_pending(req: Req, macs: list[str] | None, *, scoped: bool) -> list[dict[str, Any]]:
    """Place the pending registrations (of `macs`, or all) whose devices can be placed now, in the
    caller's transaction: `apply` (scoped to what the caller sees) and, unscoped, the approval of
    devices (`POST /devices/approve`): a device pre-registered before it was imported is placed
    the moment it is approved, so it enrolls on first contact with nothing more to do."""
    stmt = select(PnpRegistration).where(PnpRegistration.status == "pending")
    if scoped:
        stmt = stmt.where(_in_scope(req))
    if macs is not None:
        stmt = stmt.where(PnpRegistration.mac.in_(macs))
    pending = list(await req.session.scalars(stmt.order_by(PnpRegistration.id).with_for_update()))
    found = {
        d.mac: d
        for d in await req.session.scalars(
            select(Device).where(Device.mac.in_([r.mac for r in pending])).with_for_update()
        )
    }
    results = []
    notices = Notices()
    policies: dict[str, bool] = {}  # registrant -> does its policy require label codes (DEV-3)
    for reg in pending:
        if reg.registrant_id not in policies:
            policies[reg.registrant_id] = await label_code_required_for(req.session, reg.registrant_id)
        site = await req.session.get(Site, reg.site_id)
        t = pnp.Target(
            actor_account_id=reg.registrant_id,
            account_id=reg.account_id,
            account_is_child=reg.account_id != reg.registrant_id,
            site_id=reg.site_id,
            site_has_profile=site is not None and site.profile_id is not None,
        )
        try:
            outcome, detail = await _apply_one(req, reg, found.get(reg.mac), t, policies[reg.registrant_id], notices)
        except DomainError as exc:  # a DEV rule refused this device (no-profile, ...): it stays pending
            outcome, detail = exc.error, exc.detail
            reg.detail = f"{exc.error}: {exc.detail}"
        results.append({"mac": reg.mac, "outcome": outcome, "detail": detail})
    await notices.queue(req.session, req.actor.login, req.now)
    return results
