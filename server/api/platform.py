"""Admin API: platform settings and the device-family catalog (LCK-1, FW-1, SIT-3's N).

Every account reads them; only the platform administrator writes them (the guide: "You cannot
edit these settings. They are available in read-only format", and "Other account
administrators can only view firmware settings").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.routing import Api, Req
from server.domain.errors import not_found
from server.domain.firmware import Catalog
from server.domain.lockout import LockoutPolicy
from server.domain.throttle import GuessingPolicy
from server.store import platform_cache
from server.store.models import DeviceFamily, Setting

api = Api()

LOCKOUT_KEY = "lockout"
GUESSING_KEY = "guessing"
_BUDGET = {
    "type": "object",
    "required": ["failures", "minutes"],
    "additionalProperties": False,
    "properties": {"failures": {"type": "integer"}, "minutes": {"type": "integer"}},  # ranges: throttle.Budget
}
GUESSING = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {"per_address": _BUDGET, "global": _BUDGET},
}
_VERSION = {"type": "string", "minLength": 1, "maxLength": 64}

LOCKOUT = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        # Ranges are LockoutPolicy's (LCK-1), so they are decided in one place.
        "attempts": {"type": "integer"},
        "minutes": {"type": "integer"},
    },
}
# What the platform may change about a model. Its name, family and $MODEL4 expansion are its
# identity (the simulators and Appendix A agree on them), so they are not editable here.
FAMILY_PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "minimum": _VERSION,
        "latest": _VERSION,
        "upgradable": {"type": "boolean"},
        "releases": {"type": "array", "minItems": 1, "maxItems": 500, "items": _VERSION},
        "last_n": {"type": "integer"},
        "manual_upgrade_below": {"oneOf": [_VERSION, {"type": "null"}]},
        "notes": {"type": "string", "maxLength": 2000},
    },
}


async def _invalidate() -> None:
    platform_cache.invalidate()


async def lockout_policy(session: AsyncSession) -> LockoutPolicy:
    """LCK-1: the stored policy; the defaults (3 attempts, 30 minutes) until one is stored."""
    row = await session.get(Setting, LOCKOUT_KEY)
    if row is None or not isinstance(row.value, dict):
        return LockoutPolicy()
    return LockoutPolicy(**{k: row.value[k] for k in ("attempts", "minutes") if k in row.value})


async def guessing_policy(session: AsyncSession) -> GuessingPolicy | None:
    """Enrollment-code guessing budgets as stored; None until the platform stored some (the
    server's own default applies then: `ServeConfig.guessing`)."""
    row = await session.get(Setting, GUESSING_KEY)
    return GuessingPolicy.from_json(row.value) if row is not None else None


def _policy_json(policy: LockoutPolicy) -> dict[str, Any]:
    return {"attempts": policy.attempts, "minutes": policy.minutes}


@api.route(
    "GET",
    "/settings/lockout",
    summary="Device lockout settings, read-only to accounts (LCK-1)",
    action="settings.read",
    process="SETTINGS",
    tag="settings",
)
async def get_lockout(req: Req) -> Any:
    return _policy_json(await lockout_policy(req.session))


@api.route(
    "PUT",
    "/settings/lockout",
    summary="Change the invalid-attempt limit and lockout minutes (LCK-1; platform only)",
    action="settings.write",
    process="SETTINGS",
    body=LOCKOUT,
    tag="settings",
)
async def put_lockout(req: Req) -> Any:
    req.after_commit.append(_invalidate)
    current = await lockout_policy(req.session)
    policy = LockoutPolicy(**{**_policy_json(current), **req.body})  # validates (LCK-1 ranges)
    row = await req.session.get(Setting, LOCKOUT_KEY)
    if row is None:
        req.session.add(Setting(key=LOCKOUT_KEY, value=_policy_json(policy)))
    else:
        row.value = _policy_json(policy)  # a new dict: JSON columns only notice reassignment
    req.audit_message = (
        f"lockout settings: attempts {current.attempts} -> {policy.attempts}, "
        f"minutes {current.minutes} -> {policy.minutes}"
    )
    return _policy_json(policy)


def _family_json(row: DeviceFamily) -> dict[str, Any]:
    return {"model": row.model, **row.data}


async def _family(req: Req, model: str) -> DeviceFamily:
    row = await req.session.get(DeviceFamily, model)
    if row is None:
        raise not_found("unknown-model", f"the device-family catalog has no model {model!r}")
    return row


@api.route(
    "GET",
    "/device-families",
    summary="The device-family catalog: per model minimum, latest, releases, N (FW-1, SIT-3)",
    action="families.read",
    process="FIRMWARE",
)
async def list_families(req: Req) -> Any:
    limit, offset = req.page()
    total = await req.session.scalar(select(func.count()).select_from(DeviceFamily))
    rows = await req.session.scalars(select(DeviceFamily).order_by(DeviceFamily.model).limit(limit).offset(offset))
    return {"items": [_family_json(r) for r in rows], "total": total}


@api.route(
    "GET",
    "/device-families/{model}",
    summary="One model of the device-family catalog (FW-1)",
    action="families.read",
    process="FIRMWARE",
)
async def get_family(req: Req) -> Any:
    return _family_json(await _family(req, req.param("model")))


@api.route(
    "PUT",
    "/device-families/{model}",
    summary="Change a model's minimum, latest, releases, upgradability or N (FW-1, SIT-3; platform only)",
    action="families.write",
    process="FIRMWARE",
    body=FAMILY_PATCH,
)
async def put_family(req: Req) -> Any:
    req.after_commit.append(_invalidate)
    row = await _family(req, req.param("model"))
    merged = {**row.data, **req.body}
    if merged.get("manual_upgrade_below", "") is None:
        merged.pop("manual_upgrade_below")  # null clears it; the catalog file simply omits it
    # The whole catalog is checked, not just this model: aliases must stay unique across models.
    others = {r.model: r.data for r in await req.session.scalars(select(DeviceFamily)) if r.model != row.model}
    Catalog.from_data({"schema_version": 1, "models": {**others, row.model: merged}})
    row.data = merged
    changed = ", ".join(f"{k}={req.body[k]}" for k in sorted(req.body) if k not in ("releases", "notes"))
    if "releases" in req.body:
        changed = ", ".join(filter(None, [changed, f"{len(req.body['releases'])} releases"]))
    req.audit_message = f"device family {row.model}: {changed or 'notes'}"
    return _family_json(row)


@api.route(
    "GET",
    "/settings/guessing",
    summary="Enrollment-code guessing budgets (per client address and global) and this process's figures",
    action="settings.read",
    process="SETTINGS",
    tag="settings",
)
async def get_guessing(req: Req) -> Any:
    gate = req.ctx.guessing
    policy = await guessing_policy(req.session) or gate.default
    return {**policy.to_json(), "figures": gate.figures(req.ctx.clock())}


@api.route(
    "PUT",
    "/settings/guessing",
    summary="Change the enrollment-code guessing budgets (platform only)",
    action="settings.write",
    process="SETTINGS",
    body=GUESSING,
    tag="settings",
)
async def put_guessing(req: Req) -> Any:
    req.after_commit.append(_invalidate)
    current = await guessing_policy(req.session) or req.ctx.guessing.default
    policy = GuessingPolicy.from_json({**current.to_json(), **req.body})  # validates (throttle.Budget ranges)
    row = await req.session.get(Setting, GUESSING_KEY)
    if row is None:
        req.session.add(Setting(key=GUESSING_KEY, value=policy.to_json()))
    else:
        row.value = policy.to_json()
    req.audit_message = f"guessing budgets: {current.to_json()} -> {policy.to_json()}"
    return policy.to_json()
