"""Admin API: the dashboard's figures (issue 13, until the portal of issue 16 shows them): devices by
state and what the guessing limits refused — wrong codes, lockouts, the enrollment-code budgets
per address and global, failed and throttled logins, wrong claims and claim-budget refusals.

Decisions:
- Scope (ACC-7): the platform sees everything (also what belongs to no account, such as the code
  budgets' refusals, which come before any look-up); every other administrator its subtree — the
  devices its hierarchy holds (a manufacturer: the devices it imported, as `GET /devices`) and
  the audit entries filed under its subtree, as `GET /logs` shows them. `account_id` narrows the
  view to one account of the subtree (404 `account-not-found` outside it, like every account call).
- The window is the last `hours` hours (default 24, 1..168): the figures are counts of audit
  entries (`server.store.figures`), so they survive restarts and agree across server processes.
- The platform's global view adds this process's counters (`process`): the same figures the
  settings calls give (`GET /settings/guessing`, `/settings/login-throttle`) plus the claim
  budgets spent now and the failure notices held back (`server.domain.failure_notices`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select

from server.api.devices.visibility import scope_devices
from server.api.routing import Api, Req
from server.api.scope import account_in_scope
from server.domain import inputs
from server.domain.errors import bad_request
from server.domain.permissions import MANUFACTURER, PLATFORM
from server.store.figures import DEVICE_STATES, GUESSING, device_counts, guessing_counts
from server.store.models import Account, AuditLog, Device

api = Api()

DEFAULT_HOURS, MAX_HOURS = 24, 168

_COUNT = {"type": "integer", "minimum": 0}
_COUNTS = {"type": "object", "additionalProperties": _COUNT}
ANSWER = {
    "type": "object",
    "required": ["scope", "at", "window", "devices", "guessing"],
    "properties": {
        "scope": {
            "type": "object",
            "required": ["account_id", "global"],
            "properties": {"account_id": {"type": ["string", "null"]}, "global": {"type": "boolean"}},
        },
        "at": {"type": "string", "format": "date-time"},
        "window": {
            "type": "object",
            "required": ["hours", "since"],
            "properties": {"hours": _COUNT, "since": {"type": "string", "format": "date-time"}},
        },
        "devices": {
            "type": "object",
            "required": ["total", "by_state", "locked"],
            "properties": {
                "total": _COUNT,
                "by_state": {
                    "type": "object",
                    "required": list(DEVICE_STATES),
                    "properties": {name: _COUNT for name in DEVICE_STATES},
                },
                "locked": _COUNT,
            },
        },
        "guessing": {
            "type": "object",
            "required": list(GUESSING),
            "properties": {name: _COUNT for name in GUESSING},
        },
        "process": {
            "type": "object",
            "description": "this server process's counters since it started (the platform's global view only)",
            "properties": {
                "enrollment_codes": _COUNTS,
                "logins": _COUNTS,
                "claims_refused_now": _COUNT,
                "failure_notices_held_back": _COUNT,
            },
        },
    },
}


@api.route(
    "GET",
    "/dashboard",
    summary=(
        "Dashboard figures of your subtree (ACC-7; the platform: everything): devices by state and, for "
        "the last `hours` hours, what the guessing limits refused — wrong codes, lockouts, enrollment-code "
        "budget refusals per address and global, failed and throttled logins, wrong claims and "
        "claim-budget refusals (counted from the audit log)"
    ),
    action="dashboard.read",
    process="ACCOUNT",
    query=(
        ("account_id", "only this account of your subtree and its descendants"),
        ("hours", f"the window of the guessing figures, 1..{MAX_HOURS} hours (default {DEFAULT_HOURS})"),
    ),
    answer=ANSWER,
)
async def dashboard(req: Req) -> Any:
    now = req.now
    hours = _hours(req)
    since = now - timedelta(hours=hours)
    wanted = req.query("account_id")
    account: Account | None = None
    if wanted:
        account = await account_in_scope(req.session, req.actor, wanted)
    elif req.actor.role != PLATFORM:
        account = await account_in_scope(req.session, req.actor, req.actor.acting_id)

    answer: dict[str, Any] = {
        "scope": {"account_id": account.id if account else None, "global": account is None},
        "at": now,
        "window": {"hours": hours, "since": since},
        "devices": await device_counts(req.session, _device_scope(req, account), now),
        "guessing": await guessing_counts(req.session, _audit_scope(account), since),
    }
    if account is None:  # the platform's global view
        ctx = req.ctx
        answer["process"] = {
            "enrollment_codes": ctx.guessing.figures(now),
            "logins": ctx.login_throttle.figures(now),
            "claims_refused_now": ctx.claims.limited(now),
            "failure_notices_held_back": ctx.failure_notices.held_back,
        }
    return answer


def _hours(req: Req) -> int:
    text = req.query("hours")
    if text is None:
        return DEFAULT_HOURS
    hours = inputs.ascii_int(text, 1, MAX_HOURS)
    if hours is None:
        raise bad_request("invalid-window", f"hours is a whole number of hours, 1..{MAX_HOURS}", text[:40])
    return hours


def _device_scope(req: Req, account: Account | None) -> Any:
    """ACC-7: the devices `account`'s view counts (None: all); as `GET /devices` for one's own."""
    if account is None:
        return lambda stmt: stmt
    if account.id == req.actor.acting_id:
        return lambda stmt: scope_devices(stmt, req.actor)
    if account.type == MANUFACTURER:
        return lambda stmt: stmt.where(Device.imported_by == account.id)

    def held(stmt: Select[Any]) -> Select[Any]:
        return stmt.join(Account, Account.id == Device.owner_id).where(
            Account.path.startswith(account.path, autoescape=True)
        )

    return held


def _audit_scope(account: Account | None) -> ColumnElement[bool] | None:
    """LOG-1: the entries filed under `account`'s subtree (None: every entry)."""
    if account is None:
        return None
    return AuditLog.account_path.startswith(account.path, autoescape=True)
