"""The dashboard's figures (issue 13): devices by state, and what the guessing limits refused, read
from the devices table and the audit log (LOG-1, ENR-5), for one scope.

A scope is a set of conditions the caller builds (ACC-7: `server.api.dashboard`): one on the
devices table and one on the audit log; None means everything (the platform's global view).

Decisions:
- Device states are exclusive, in the order of a device's life: `not_approved` (DEV-2),
  `unclaimed` (approved, no owner), `claimed` (an owner, not associated: DEV-3), `associated`
  (not activated: DEV-4), `activated` (never enrolled: DEV-6), `enrolled` (`enrolled_at` set:
  EC-7, ENR-2). `locked` counts, besides, the devices locked now (LCK-2).
- Guessing figures are audit entries of the window, recognised by what their writers put first:
  an admin call's FAIL message starts with its error id (`routing`), an enrollment's message is
  `MAC [subject] result (reason): …` (`server.store.enrollment`, `server.device.enroll`). So the
  figures need no column of their own and count what the log shows, entry by entry; a claim job
  whose budget ran out part-way is accepted (its devices end FAIL `too-many-attempts` in the job,
  not in the log) and is not a refusal here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.store.models import AuditLog, Device

DEVICE_STATES = ("not_approved", "unclaimed", "claimed", "associated", "activated", "enrolled")

_FAIL = AuditLog.status == "FAIL"
_ENROLL = and_(_FAIL, AuditLog.process == "ENROLLMENT")
_BUDGET = "too-many-attempts (too-many-attempts): "  # `server.device.enroll` refusals before any look-up
_LOGIN_THROTTLED = "too-many-attempts: too many failed logins "
# The L-th wrong code answers `locked` with its own reason (`wrong-code`, …); while locked: `locked (locked)`.
_LOCKING = and_(AuditLog.message.like("%] locked (%"), not_(AuditLog.message.like("%] locked (locked):%")))
# figure -> the audit entries it counts (see the module docstring)
GUESSING: dict[str, ColumnElement[bool]] = {
    # every wrong code counted (LCK-2): answered code_invalid, or the one that locked the device
    "wrong_codes": and_(_ENROLL, or_(AuditLog.message.like("%] code_invalid (%"), _LOCKING)),
    "lockouts": and_(_ENROLL, _LOCKING),
    "refused_while_locked": and_(_ENROLL, AuditLog.message.like("%] locked (locked):%")),
    "code_refusals_per_address": and_(_ENROLL, AuditLog.message.like(f"%] {_BUDGET}per-address %")),
    "code_refusals_global": and_(_ENROLL, AuditLog.message.like(f"%] {_BUDGET}global %")),
    # the failures the login throttle counts (`server.api.auth.COUNTED`), not `account-disabled`
    "failed_logins": and_(
        _FAIL,
        AuditLog.process == "LOGIN",
        AuditLog.action == "login",
        or_(*(AuditLog.message.like(f"{error}:%") for error in ("invalid-credentials", "invalid-otp", "otp-replayed"))),
    ),
    "login_throttles_per_address": and_(
        _FAIL, AuditLog.process == "LOGIN", AuditLog.message.like(f"{_LOGIN_THROTTLED}(per-address)%")
    ),
    "login_throttles_per_login": and_(
        _FAIL, AuditLog.process == "LOGIN", AuditLog.message.like(f"{_LOGIN_THROTTLED}(per-login)%")
    ),
    "wrong_claims": and_(_FAIL, AuditLog.action == "claim_device", AuditLog.message.like("device-not-found:%")),
    "claim_budget_refusals": and_(
        _FAIL, AuditLog.process.in_(("DEVICE", "JOB")), AuditLog.message.like("too-many-attempts:%")
    ),
}


def device_state() -> Any:
    """The exclusive state of a device row (module docstring), as SQL."""
    return case(
        (Device.approved.is_(False), "not_approved"),
        (Device.owner_id.is_(None), "unclaimed"),
        (Device.associated.is_(False), "claimed"),
        (Device.activated.is_(False), "associated"),
        (Device.enrolled_at.is_(None), "activated"),
        else_="enrolled",
    )


async def device_counts(session: AsyncSession, scope: Any, now: datetime) -> dict[str, Any]:
    """Devices by state and locked now. `scope(stmt)` restricts a statement on `devices` (ACC-7)."""
    state = device_state()
    by_state = dict.fromkeys(DEVICE_STATES, 0)
    rows = await session.execute(scope(select(state, func.count()).select_from(Device)).group_by(state))
    for name, count in rows:
        by_state[str(name)] = int(count)
    locked = await session.scalar(
        scope(select(func.count()).select_from(Device)).where(Device.locked_until > now)
    )
    return {"total": sum(by_state.values()), "by_state": by_state, "locked": int(locked or 0)}


async def guessing_counts(
    session: AsyncSession, scope: ColumnElement[bool] | None, since: datetime
) -> dict[str, int]:
    """Each `GUESSING` figure: audit entries at or after `since` within `scope` (None: all)."""
    columns = [func.sum(case((cond, 1), else_=0)).label(name) for name, cond in GUESSING.items()]
    stmt = select(*columns).where(AuditLog.at >= since, _FAIL)
    if scope is not None:
        stmt = stmt.where(scope)
    row = (await session.execute(stmt)).one()
    return {name: int(row._mapping[name] or 0) for name in GUESSING}
