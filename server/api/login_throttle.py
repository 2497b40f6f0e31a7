"""Admin API: the login throttle's settings and this process's figures (issue 13,
`server.domain.login_throttle`). Every account reads them; only the platform writes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.api.routing import Api, Req
from server.domain.login_throttle import LoginThrottlePolicy
from server.store import platform_cache
from server.store.models import Setting

api = Api()

LOGIN_THROTTLE_KEY = "login-throttle"
_INTEGER = {"type": "integer"}  # ranges: throttle.Budget and login_throttle.BackOff, decided in one place
LOGIN_THROTTLE = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "per_address": {
            "type": "object",
            "required": ["failures", "minutes"],
            "additionalProperties": False,
            "properties": {"failures": _INTEGER, "minutes": _INTEGER},
        },
        "per_login": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {name: _INTEGER for name in ("free", "base_seconds", "cap_seconds", "reset_minutes")},
        },
    },
}


async def login_throttle_policy(session: AsyncSession) -> LoginThrottlePolicy | None:
    """The stored login throttle; None until the platform stored one (the server's own default
    applies then: `ServeConfig.login_throttle`)."""
    row = await session.get(Setting, LOGIN_THROTTLE_KEY)
    return LoginThrottlePolicy.from_json(row.value) if row is not None else None


async def current_login_throttle(req: Req) -> LoginThrottlePolicy:
    """The policy in force for this process, applied to its gate (cached like the lockout policy)."""
    gate = req.ctx.login_throttle
    gate.apply(await platform_cache.cached(LOGIN_THROTTLE_KEY, req.ctx.store, login_throttle_policy))
    return gate.policy


async def _invalidate() -> None:
    platform_cache.invalidate()


@api.route(
    "GET",
    "/settings/login-throttle",
    summary="Login throttling (per client address and per login name) and this process's figures",
    action="settings.read",
    process="SETTINGS",
    tag="settings",
)
async def get_login_throttle(req: Req) -> Any:
    policy = await current_login_throttle(req)
    return {**policy.to_json(), "figures": req.ctx.login_throttle.figures(req.ctx.clock())}


@api.route(
    "PUT",
    "/settings/login-throttle",
    summary="Change the login throttling (platform only)",
    action="settings.write",
    process="SETTINGS",
    body=LOGIN_THROTTLE,
    tag="settings",
)
async def put_login_throttle(req: Req) -> Any:
    req.after_commit.append(_invalidate)
    current = await login_throttle_policy(req.session) or req.ctx.login_throttle.default
    merged = current.to_json()
    for part in ("per_address", "per_login"):
        merged[part] = {**merged[part], **req.body.get(part, {})}
    policy = LoginThrottlePolicy.from_json(merged)  # validates (Budget and BackOff ranges)
    row = await req.session.get(Setting, LOGIN_THROTTLE_KEY)
    if row is None:
        req.session.add(Setting(key=LOGIN_THROTTLE_KEY, value=policy.to_json()))
    else:
        row.value = policy.to_json()  # a new dict: JSON columns only notice reassignment
    req.audit_message = f"login throttle: {current.to_json()} -> {policy.to_json()}"
    return policy.to_json()
