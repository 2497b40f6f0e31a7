"""Device lockout after wrong enrollment codes (LCK-1..3).

Decisions:
- LCK-2: the L-th consecutive wrong code locks the device, and the answer to that very code
  is already `locked`. While locked, every code, right or wrong, is refused and does not
  extend the lock. The lock lifts when its time has passed (the counter starts again from
  zero) or when an administrator activates the device.
- A right code resets the counter.
- LCK-1 bounds for the platform settings: 1-20 attempts, 1-1440 minutes (a day).
- LCK-3 (concurrent wrong codes never give more than L tries) is the store's conditional
  update of `failed`; these functions compute the state that update writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from server.domain.errors import invalid

ATTEMPTS_RANGE = (1, 20)
MINUTES_RANGE = (1, 1440)


@dataclass(frozen=True)
class LockoutPolicy:
    """LCK-1: platform-wide invalid-attempt limit (default 3) and lockout time (default 30 min)."""

    attempts: int = 3
    minutes: int = 30

    def __post_init__(self) -> None:
        for name, value, (low, high), error in (
            ("attempts", self.attempts, ATTEMPTS_RANGE, "invalid-lockout-attempts"),
            ("minutes", self.minutes, MINUTES_RANGE, "invalid-lockout-minutes"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise invalid(
                    error,
                    f"The lockout {name} must be a whole number from {low} to {high} (LCK-1).",
                    value=value,
                )

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class LockState:
    """LCK-2: consecutive wrong codes of one device and, when locked, until when."""

    failed: int = 0
    locked_until: datetime | None = None


class WrongCodeOutcome(NamedTuple):
    state: LockState
    attempts_left: int
    locked: bool


def is_locked(state: LockState, now: datetime) -> bool:
    """LCK-2: locked until `locked_until` (exclusive)."""
    return state.locked_until is not None and now < state.locked_until


def current_state(state: LockState, now: datetime) -> LockState:
    """LCK-2: a lock whose time has passed is gone, and its counter with it."""
    if state.locked_until is not None and not is_locked(state, now):
        return LockState()
    return state


def after_wrong_code(state: LockState, policy: LockoutPolicy, now: datetime) -> WrongCodeOutcome:
    """LCK-2: count a wrong code. The `attempts`-th consecutive one locks for `minutes`, and its
    answer is already `locked`; while locked, nothing changes."""
    if is_locked(state, now):
        return WrongCodeOutcome(state, 0, True)
    failed = current_state(state, now).failed + 1
    if failed >= policy.attempts:
        return WrongCodeOutcome(LockState(failed, now + policy.duration), 0, True)
    return WrongCodeOutcome(LockState(failed, None), policy.attempts - failed, False)


def after_success() -> LockState:
    """LCK-2: a right code (accepted while not locked) resets the counter."""
    return LockState()


def after_activation() -> LockState:
    """LCK-2: an administrator activating the device lifts the lock and resets the counter."""
    return LockState()


def after_unlock() -> LockState:
    """LCK-2 (issue 13): an administrator's unlock (`POST /devices/unlock`) lifts the lock and
    resets the counter, whoever holds the device and whether or not it is claimed."""
    return LockState()


def describe(state: LockState, now: datetime) -> dict[str, object]:
    """A device's lock state as an unlock answer and its audit entry report it (LCK-2)."""
    locked = is_locked(state, now)
    return {
        "locked": locked,
        "failed_attempts": current_state(state, now).failed,
        "locked_until": state.locked_until if locked else None,
    }


def retry_after_seconds(state: LockState, now: datetime) -> int:
    """LCK-2: whole seconds until the lock lifts (rounded up, at least 1 while locked); 0 if not locked."""
    if not is_locked(state, now) or state.locked_until is None:
        return 0
    return max(1, math.ceil((state.locked_until - now).total_seconds()))
