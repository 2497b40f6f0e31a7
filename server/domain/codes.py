"""Enrollment codes: NEC expiry and generation, PEC composition, usability (EC-1..8).

Decisions:
- A 12-digit NEC always starts with `0`; a PEC never does, because account IDs never do
  (ACC-3). So the kind of a 12-digit code is known from its first digit, and no NEC can ever
  equal a PEC (EC-8). That leaves 11 random digits (10^11 codes), still unguessable.
  8-digit NECs use all 8 digits.
- "No expiry beyond 3 months" (EC-1) caps every expiry at start + 3 calendar months, so the
  rare `90 days` from 31 January (89 days later it is already 30 April) ends on 30 April.
- Months are calendar months; a day that does not exist in the target month is clamped to
  the month's last day (31 January + 1 month = 28/29 February).
- Expired is reported before used up when both apply.
- Updating the expiry restarts it at the update (like regeneration, EC-5), so shortening a
  code's lifetime never expires it retroactively; updating only the total keeps the clock.
  A total at or below the enrolled count is allowed: the code is then used up.
- The store enforces EC-3 under concurrency with a conditional update
  (`... SET enrolled = enrolled + 1 WHERE enrolled < total AND (expires_at IS NULL OR
  expires_at > :now)`); `code_usable` states the same condition for one snapshot.
"""

from __future__ import annotations

import calendar
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal

from server.domain.errors import conflict, invalid
from server.domain.sites import validate_pin


class ExpiryUnit(StrEnum):
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"


_EXPIRY_RANGES: Mapping[ExpiryUnit, tuple[int, int]] = {
    ExpiryUnit.HOURS: (1, 72),
    ExpiryUnit.DAYS: (1, 90),
    ExpiryUnit.WEEKS: (1, 12),
    ExpiryUnit.MONTHS: (1, 3),
}
MAX_LIFETIME_MONTHS = 3


def _expiry_error(detail: str, value: Any) -> Exception:
    return invalid("invalid-expiry", f"{detail} (EC-1)", value=value)


@dataclass(frozen=True)
class Expiry:
    """EC-1: an NEC lifetime: hours 1-72, days 1-90, weeks 1-12 or months 1-3."""

    unit: ExpiryUnit
    value: int

    def __post_init__(self) -> None:
        try:
            unit = ExpiryUnit(self.unit)
        except ValueError:
            raise _expiry_error(
                "The expiry unit must be hours, days, weeks or months (or no expiry at all)", self.unit
            ) from None
        object.__setattr__(self, "unit", unit)
        low, high = _EXPIRY_RANGES[unit]
        if isinstance(self.value, bool) or not isinstance(self.value, int) or not low <= self.value <= high:
            raise _expiry_error(f"An expiry in {unit.value} must be a whole number from {low} to {high}", self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit.value, "value": self.value}


def parse_expiry(raw: object) -> Expiry | None:
    """EC-1: `{"unit": ..., "value": ...}` or None (never expires)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"unit", "value"}:
        raise _expiry_error('The expiry must be {"unit": ..., "value": ...} or null', None)
    return Expiry(raw["unit"], raw["value"])


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {moment!r}")


def add_months(start: datetime, months: int) -> datetime:
    """EC-1: `start` plus calendar months, the day clamped to the target month's last day."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def expires_at(expiry: Expiry | None, start: datetime) -> datetime | None:
    """EC-1/EC-5: when an NEC issued (or regenerated) at `start` expires; None = never.

    Never later than `start` + 3 calendar months.
    """
    _require_aware(start, "start")
    if expiry is None:
        return None
    if expiry.unit is ExpiryUnit.MONTHS:
        end = add_months(start, expiry.value)
    else:
        end = (
            start
            + {
                ExpiryUnit.HOURS: timedelta(hours=expiry.value),
                ExpiryUnit.DAYS: timedelta(days=expiry.value),
                ExpiryUnit.WEEKS: timedelta(weeks=expiry.value),
            }[expiry.unit]
        )
    return min(end, add_months(start, MAX_LIFETIME_MONTHS))


CodeKind = Literal["nec8", "nec12", "pec12"]
NEC_LENGTHS: Final = (8, 12)
_GENERATE_TRIES = 32


def classify_code(code: object) -> CodeKind | None:
    """EC-1/EC-6: the kind of a typed code by its shape: 8 digits = NEC, 12 digits starting
    with 0 = NEC, other 12 digits = PEC; anything else None."""
    if not isinstance(code, str) or not re.fullmatch(r"[0-9]{8}|[0-9]{12}", code):
        return None
    if len(code) == 8:
        return "nec8"
    return "nec12" if code[0] == "0" else "pec12"


def validate_code_length(length: object) -> int:
    """EC-1: an NEC has 8 or 12 digits. Refusal: `invalid-code-length`."""
    if isinstance(length, bool) or not isinstance(length, int) or length not in NEC_LENGTHS:
        raise invalid("invalid-code-length", "An enrollment code has 8 or 12 digits (EC-1).", value=length)
    return length


def generate_nec(length: int, taken: Callable[[str], bool]) -> str:
    """EC-1/EC-8: a new random NEC of 8 or 12 digits (cryptographic randomness) that `taken`
    (the store's "is this a live code?") does not know; retried on collision."""
    length = validate_code_length(length)
    for _ in range(_GENERATE_TRIES):
        if length == 8:
            candidate = f"{secrets.randbelow(10**8):08d}"
        else:
            candidate = f"0{secrets.randbelow(10**11):011d}"
        if not taken(candidate):
            return candidate
    raise conflict("code-space-exhausted", f"No free {length}-digit code found in {_GENERATE_TRIES} random tries.")


def check_nec_allowed(site_has_profile: bool) -> None:
    """EC-2: a site needs a profile before an NEC can be generated (`site-without-profile`)."""
    if not site_has_profile:
        raise conflict(
            "site-without-profile",
            "Associate a profile with the site before generating an enrollment code (EC-2).",
        )


def pec_for(account_id: str, pin: str | None) -> str:
    """EC-6: the PEC is the 8-digit account ID followed by the site's 4-digit PIN."""
    if not isinstance(account_id, str) or not re.fullmatch(r"[1-9][0-9]{7}", account_id):
        raise invalid("invalid-account-id", "An account ID has 8 digits, the first not 0 (ACC-3).", value=account_id)
    valid_pin = validate_pin(pin)
    if valid_pin is None:
        raise conflict("site-without-pin", "The site has no PIN, so it has no provisioning enrollment code (EC-6).")
    return account_id + valid_pin


def split_pec(code: str) -> tuple[str, str]:
    """EC-6: (account ID, PIN) of a PEC-shaped code; `invalid-code` for anything else."""
    if classify_code(code) != "pec12":
        raise invalid("invalid-code", "Not a 12-digit provisioning enrollment code.", value=code)
    return code[:8], code[8:]


TOTAL_MAX = 100_000


def validate_total(total: object) -> int:
    """EC-1/EC-4: the total-devices limit is a whole number from 1 to 100000 (`invalid-total`)."""
    if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= TOTAL_MAX:
        raise invalid(
            "invalid-total", f"The total number of devices must be from 1 to {TOTAL_MAX} (EC-1).", value=total
        )
    return total


@dataclass(frozen=True)
class NecState:
    """EC-1/EC-4: a site's NEC: the code, its limit, how many enrolled, its expiry and since when."""

    code: str
    total: int
    enrolled: int
    expiry: Expiry | None
    started_at: datetime

    @property
    def expires_at(self) -> datetime | None:
        return expires_at(self.expiry, self.started_at)


def code_usable(state: NecState, now: datetime) -> str | None:
    """EC-1/EC-3: why an NEC cannot enroll a device now (`expired`, `used-up`), or None.

    Expired at and after its expiry instant; used up when the enrolled count reached the total.
    """
    _require_aware(now, "now")
    end = state.expires_at
    if end is not None and now >= end:
        return "expired"
    if state.enrolled >= state.total:
        return "used-up"
    return None


def new_nec(length: int, total: int, expiry: Expiry | None, now: datetime, taken: Callable[[str], bool]) -> NecState:
    """EC-1: a fresh NEC for a site (the caller checked EC-2 with `check_nec_allowed`)."""
    _require_aware(now, "now")
    return NecState(generate_nec(length, taken), validate_total(total), 0, expiry, now)


class _Unset:
    pass


UNSET: Final = _Unset()


def update_nec(
    state: NecState,
    now: datetime,
    *,
    total: int | _Unset = UNSET,
    expiry: Expiry | None | _Unset = UNSET,
) -> NecState:
    """EC-4: change the total and/or the expiry; the code and the enrolled count stay.

    A new expiry counts from `now`; changing only the total keeps the expiry clock.
    """
    _require_aware(now, "now")
    changed = state
    if not isinstance(total, _Unset):
        changed = replace(changed, total=validate_total(total))
    if not isinstance(expiry, _Unset):
        changed = replace(changed, expiry=expiry, started_at=now)
    return changed


def regenerate_nec(state: NecState, length: int, now: datetime, taken: Callable[[str], bool]) -> NecState:
    """EC-5: a new code with the same settings (the length may change); the expiry restarts at
    `now`; the enrolled count is kept."""
    _require_aware(now, "now")
    return replace(state, code=generate_nec(length, taken), started_at=now)
