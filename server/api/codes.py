"""Admin API: enrollment codes of a site — the numeric code (NEC) and the provisioning code (PEC)
(EC-1, EC-2, EC-4, EC-5, EC-6, EC-8).

Decisions:
- One NEC per site: a second POST is 409 `nec-exists`; regenerate (EC-5) or delete it instead.
- EC-2: a site without a profile gets no NEC, also on regeneration (409 `site-without-profile`).
- EC-4: updating the expiry restarts it at the update (the domain's decision: shortening a
  lifetime never expires a code retroactively); updating only the total keeps the clock. The
  table's `created_at` holds the start of the current expiry clock (issue, regeneration or
  expiry change), shown as `started_at`.
- EC-8: a drawn code that a stored code already has is drawn again; the unique `code` column is
  the last guard (a concurrent draw of the same code, odds about 10^-8, answers 409 and the call
  can simply be repeated). Codes never appear in audit messages: they are credentials.
- `length` defaults to 8 and `expiry` to null (never expires) when omitted; regeneration keeps
  the current length unless one is given.
- EC-6: the PEC is derived (account ID + PIN), never stored; a site without a PIN has none
  (404 `no-pin`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from server.api.routing import Api, Reply, Req
from server.api.sites import site_in_scope
from server.domain import codes as rules
from server.domain.errors import conflict, not_found
from server.store.models import EnrollmentCode, Site

api = Api()

_ANY: dict[str, Any] = {}  # checked by the domain, so each refusal has its own error id
CREATE = {
    "type": "object",
    "required": ["total_devices"],
    "additionalProperties": False,
    "properties": {"length": _ANY, "total_devices": _ANY, "expiry": _ANY},
}
PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {"total_devices": _ANY, "expiry": _ANY},
}
REGENERATE = {"type": "object", "additionalProperties": False, "properties": {"length": _ANY}}
_DRAWS = 16


def _state(row: EnrollmentCode) -> rules.NecState:
    expiry = rules.Expiry(row.expiry_unit, row.expiry_value) if row.expiry_unit else None  # type: ignore[arg-type]
    return rules.NecState(row.code, row.total_devices, row.enrolled, expiry, row.created_at)


def _store(row: EnrollmentCode, state: rules.NecState) -> None:
    row.code = state.code
    row.length = len(state.code)
    row.total_devices = state.total
    row.expiry_unit = state.expiry.unit.value if state.expiry else None
    row.expiry_value = state.expiry.value if state.expiry else None
    row.created_at = state.started_at
    row.expires_at = state.expires_at


def nec_json(row: EnrollmentCode, now: datetime) -> dict[str, Any]:
    state = _state(row)
    return {
        "site_id": row.site_id,
        "code": row.code,
        "length": row.length,
        "total_devices": row.total_devices,
        "enrolled": row.enrolled,  # EC-4: the enrolled count is shown
        "remaining": max(row.total_devices - row.enrolled, 0),
        "expiry": state.expiry.to_dict() if state.expiry else None,
        "started_at": row.created_at,
        "expires_at": row.expires_at,
        "status": rules.code_usable(state, now) or "active",
    }


def _describe(state: rules.NecState) -> str:
    expiry = f"{state.expiry.value} {state.expiry.unit.value}" if state.expiry else "never"
    return f"{len(state.code)} digits, total {state.total}, expiry {expiry}"


async def _draw(req: Req, make: Callable[[Callable[[str], bool]], rules.NecState]) -> rules.NecState:
    """EC-8: a state from `make` (the domain's generator) whose code no stored code has."""
    taken: set[str] = set()
    for _ in range(_DRAWS):
        state = make(taken.__contains__)
        if await req.session.scalar(select(EnrollmentCode.site_id).where(EnrollmentCode.code == state.code)) is None:
            return state
        taken.add(state.code)
    raise conflict("code-space-exhausted", "no free code found; try the other length")


async def _nec(req: Req, site: Site) -> EnrollmentCode:
    row = await req.session.get(EnrollmentCode, site.id)
    if row is None:
        raise not_found("no-nec", f"site {site.id} has no numeric enrollment code; POST one first")
    return row


@api.route(
    "POST",
    "/sites/{id}/nec",
    summary="Generate the site's numeric enrollment code (EC-1, EC-2, EC-8)",
    action="codes.write",
    process="CODE",
    body=CREATE,
    status=201,
)
async def create_nec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    rules.check_nec_allowed(site.profile_id is not None)
    if await req.session.get(EnrollmentCode, site.id) is not None:
        raise conflict(
            "nec-exists",
            f"site {site.id} already has a numeric enrollment code; use PATCH to change it or regenerate it",
        )
    length = rules.validate_code_length(req.body.get("length", 8))
    total = req.body["total_devices"]
    expiry = rules.parse_expiry(req.body.get("expiry"))
    state = await _draw(req, lambda taken: rules.new_nec(length, total, expiry, req.now, taken))
    row = EnrollmentCode(site_id=site.id, enrolled=0)
    _store(row, state)
    req.session.add(row)
    await req.session.flush()
    req.audit_account = site.account_id
    req.audit_message = f"generated the numeric enrollment code of site {site.id} ({_describe(state)})"
    return Reply(nec_json(row, req.now), 201)


@api.route(
    "GET",
    "/sites/{id}/nec",
    summary="Read the site's numeric enrollment code and its enrolled count (EC-4)",
    action="codes.read",
    process="CODE",
)
async def get_nec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    return nec_json(await _nec(req, site), req.now)


@api.route(
    "PATCH",
    "/sites/{id}/nec",
    summary="Update total and expiry; a new expiry counts from now (EC-4)",
    action="codes.write",
    process="CODE",
    body=PATCH,
)
async def update_nec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    row = await _nec(req, site)
    changes: dict[str, Any] = {}
    if "total_devices" in req.body:
        changes["total"] = req.body["total_devices"]
    if "expiry" in req.body:
        changes["expiry"] = rules.parse_expiry(req.body["expiry"])
    state = rules.update_nec(_state(row), req.now, **changes)
    _store(row, state)
    req.audit_account = site.account_id
    req.audit_message = f"updated the numeric enrollment code of site {site.id} ({_describe(state)})"
    return nec_json(row, req.now)


@api.route(
    "POST",
    "/sites/{id}/nec/regenerate",
    summary="New code, same settings, expiry restarts, enrolled count kept (EC-5)",
    action="codes.write",
    process="CODE",
    body=REGENERATE,
)
async def regenerate_nec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    rules.check_nec_allowed(site.profile_id is not None)
    row = await _nec(req, site)
    length = rules.validate_code_length(req.body.get("length", row.length))
    old = _state(row)
    state = await _draw(req, lambda taken: rules.regenerate_nec(old, length, req.now, taken))
    _store(row, state)
    req.audit_account = site.account_id
    req.audit_message = f"regenerated the numeric enrollment code of site {site.id} ({_describe(state)})"
    return nec_json(row, req.now)


@api.route(
    "DELETE",
    "/sites/{id}/nec",
    summary="Delete the site's numeric enrollment code",
    action="codes.write",
    process="CODE",
)
async def delete_nec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    row = await _nec(req, site)
    await req.session.delete(row)
    req.audit_account = site.account_id
    req.audit_message = f"deleted the numeric enrollment code of site {site.id}"
    return {"deleted": site.id}


@api.route(
    "GET",
    "/sites/{id}/pec",
    summary="The site's provisioning enrollment code: account ID + PIN, never expires (EC-6)",
    action="codes.read",
    process="CODE",
)
async def get_pec(req: Req) -> Any:
    site, _ = await site_in_scope(req)
    if site.pin is None:
        raise not_found("no-pin", f"site {site.id} has no PIN, so no provisioning enrollment code (EC-6)")
    code = rules.pec_for(site.account_id, site.pin)
    return {"site_id": site.id, "code": code, "account_id": site.account_id, "expires_at": None}
