"""Login throttling (issue 13): how many failed logins an address, and a login name, may have
before `POST /api/v1/auth/login` answers 429 with `Retry-After` for a while — without letting an
attacker lock a real administrator out (docs/decisions.md "Login throttling").

    gate = LoginGate(LoginThrottlePolicy())
    attempt = gate.begin("alice@example.test", "198.51.100.7", now)
    if isinstance(attempt, Refusal): ...            # 429, Retry-After: attempt.retry_after
    ...check the password (and the one-time code)...
    gate.end(attempt, FAILED | SUCCEEDED | NEITHER, now)

Rules (pure: the caller passes `now`; no I/O):
- Per client address: a sliding-window failure budget (`throttle.FailureBudget`, any login
  names): `per_address.failures` failures within `per_address.minutes` and the address's next
  try waits until the oldest leaves the window.
- Per login name (known or not: the same rules, so the answers cannot tell them apart): after
  `per_login.free` failures, exponential back-off — the k-th failure past the free ones makes the
  next try wait `base_seconds * 2^k` after it, never more than `cap_seconds`. One try at a time
  while backing off. A name with no failure for `reset_minutes` starts again at 0.
- A success clears nothing an attacker built up (it would hand him `free` fast tries again after
  each real login); it makes the address *trusted* for that name: for `TRUST_DAYS` (the last
  `TRUSTED_PER_LOGIN` such addresses) neither limit holds that name at that address until it
  has failed `free` times itself (then both apply as to anyone). Its failures still count in
  the address's budget for every other name.
- Only failures count: a wrong password, an unknown name, a wrong or replayed one-time code.
  A right password that is refused for another reason (disabled account, one-time code still
  to send) is neither a failure nor a success.
- Tries in flight count as failures until they end (a burst of parallel tries cannot pass more
  than the budget while the password hashes are computed).
- Memory is bounded: at most `MAX_KEYS` login names (the least recently used go first) and
  `MAX_KEYS` addresses.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from server.domain.errors import invalid
from server.domain.throttle import MAX_KEYS, Budget, FailureBudget

__all__ = [
    "FAILED",
    "NEITHER",
    "SUCCEEDED",
    "Attempt",
    "BackOff",
    "LoginGate",
    "LoginThrottlePolicy",
    "Refusal",
    "TRUST_DAYS",
    "TRUSTED_PER_LOGIN",
]

TRUST_DAYS = 30
TRUSTED_PER_LOGIN = 8

End = Literal["failed", "succeeded", "neither"]
FAILED: End = "failed"
SUCCEEDED: End = "succeeded"
NEITHER: End = "neither"


def _bounded(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid("invalid-login-throttle", f"{name} is {low}..{high}", value=value)


@dataclass(frozen=True)
class BackOff:
    """Per-login exponential back-off: `free` failures, then waits of `base_seconds` doubling up to
    `cap_seconds`; forgotten `reset_minutes` after the last failure."""

    free: int = 5
    base_seconds: int = 1
    cap_seconds: int = 900
    reset_minutes: int = 1440

    def __post_init__(self) -> None:
        _bounded("free", self.free, 1, 1000)
        _bounded("base_seconds", self.base_seconds, 1, 3600)
        _bounded("cap_seconds", self.cap_seconds, self.base_seconds, 86_400)
        _bounded("reset_minutes", self.reset_minutes, 1, 43_200)

    def delay(self, failures: int) -> int | None:
        """Seconds the next try waits after the `failures`-th failure in a row; None: no wait."""
        if failures < self.free:
            return None
        return min(self.cap_seconds, self.base_seconds << min(failures - self.free, 32))

    def to_json(self) -> dict[str, int]:
        return {"free": self.free, "base_seconds": self.base_seconds, "cap_seconds": self.cap_seconds,
                "reset_minutes": self.reset_minutes}


@dataclass(frozen=True)
class LoginThrottlePolicy:
    """Defaults: 20 failures per address per 10 minutes; per login 5 free failures, then 1 s,
    2 s, 4 s … up to 15 minutes between tries. A login under attack from any number of addresses
    gets about 100 tries a day; its administrator, from an address it logged in from, is not held."""

    per_address: Budget = field(default_factory=lambda: Budget(20, 10))
    per_login: BackOff = field(default_factory=BackOff)

    def to_json(self) -> dict[str, Any]:
        return {"per_address": self.per_address.to_json(), "per_login": self.per_login.to_json()}

    @classmethod
    def from_json(cls, value: Any) -> LoginThrottlePolicy:
        default = cls()
        if not isinstance(value, dict):
            return default
        per_address = value.get("per_address")
        per_login = value.get("per_login")
        address_fields = default.per_address.to_json()
        login_fields = default.per_login.to_json()
        return cls(
            Budget(**{k: per_address.get(k, v) for k, v in address_fields.items()})
            if isinstance(per_address, dict) else default.per_address,
            BackOff(**{k: per_login.get(k, v) for k, v in login_fields.items()})
            if isinstance(per_login, dict) else default.per_login,
        )


@dataclass(frozen=True)
class Refusal:
    """Not now: `retry_after` seconds (at least 1), because of the `which` limit."""

    retry_after: int
    which: Literal["per-address", "per-login"]


@dataclass(frozen=True)
class Attempt:
    """A try let through: what `LoginGate.end` needs to count it."""

    login: str
    address: str
    exempt: bool  # an address trusted for this name: neither limit applied


@dataclass
class _Trust:
    since: datetime  # the last success from this address
    failures: int = 0  # failures from this address since then


@dataclass
class _Login:
    failures: int = 0
    last_failure: datetime | None = None
    in_flight: int = 0
    trusted: OrderedDict[str, _Trust] = field(default_factory=OrderedDict)

    def forget_old(self, now: datetime, policy: BackOff) -> None:
        if self.last_failure is not None and now - self.last_failure >= timedelta(minutes=policy.reset_minutes):
            self.failures, self.last_failure = 0, None
        stale = [a for a, t in self.trusted.items() if now - t.since >= timedelta(days=TRUST_DAYS)]
        for address in stale:
            del self.trusted[address]

    @property
    def empty(self) -> bool:
        return self.failures == 0 and self.in_flight == 0 and not self.trusted


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() + 0.999))


class LoginGate:
    """The login endpoint's limits under the current policy, and what they refused — figures for
    the operator (`GET /settings/login-throttle`). One per process."""

    def __init__(self, default: LoginThrottlePolicy | None = None, max_keys: int = MAX_KEYS, share: int = 1) -> None:
        self.default = default or LoginThrottlePolicy()
        self.policy = self.default
        self.max_keys = max_keys
        self.share = share  # processes sharing the per-address budget (server.domain.throttle)
        self.per_address = FailureBudget(self.policy.per_address.shared(share), max_keys)
        self._in_flight: dict[str, int] = {}  # per address
        self._logins: OrderedDict[str, _Login] = OrderedDict()
        self.failures = 0
        self.refused_per_address = 0
        self.refused_per_login = 0

    def apply(self, policy: LoginThrottlePolicy | None) -> None:
        """Use `policy` (None: the default); a changed limit starts its counts again (trust stays)."""
        policy = policy or self.default
        if policy == self.policy:
            return
        if policy.per_address != self.policy.per_address:
            self.per_address = FailureBudget(policy.per_address.shared(self.share), self.max_keys)
        if policy.per_login != self.policy.per_login:
            for record in self._logins.values():
                record.failures, record.last_failure = 0, None
        self.policy = policy

    def _record(self, login: str, now: datetime) -> _Login | None:
        record = self._logins.get(login)
        if record is not None:
            record.forget_old(now, self.policy.per_login)
            self._logins.move_to_end(login)
        return record

    def begin(self, login: str, address: str | None, now: datetime) -> Attempt | Refusal:
        """Before the password is looked at: a refusal, or the try to `end` afterwards."""
        address = address or "?"
        record = self._record(login, now)
        trust = record.trusted.get(address) if record is not None else None
        exempt = trust is not None and trust.failures < self.policy.per_login.free
        pending = self._in_flight.get(address, 0)
        if not exempt and self.per_address.count(address, now) + pending >= self.per_address.budget.failures:
            self.refused_per_address += 1
            return Refusal(self.per_address.retry_after(address, now) or 1, "per-address")
        if record is not None and not exempt:
            wait = self._login_wait(record, now)
            if wait is not None:
                self.refused_per_login += 1
                return Refusal(wait, "per-login")
        if record is None:
            record = self._logins[login] = _Login()
            while len(self._logins) > self.max_keys:
                self._logins.popitem(last=False)
        record.in_flight += 1
        self._in_flight[address] = pending + 1
        return Attempt(login, address, exempt)

    def _login_wait(self, record: _Login, now: datetime) -> int | None:
        back_off = self.policy.per_login
        if record.failures + record.in_flight < back_off.free:
            return None
        if record.in_flight:  # one try at a time while backing off: this one waits for its answer
            return back_off.delay(record.failures + record.in_flight) or 1
        delay = back_off.delay(record.failures)
        if delay is None or record.last_failure is None:
            return None
        free_at = record.last_failure + timedelta(seconds=delay)
        return _seconds(free_at - now) if free_at > now else None

    def end(self, attempt: Attempt, outcome: End, now: datetime) -> None:
        pending = self._in_flight.get(attempt.address, 0) - 1
        if pending > 0:
            self._in_flight[attempt.address] = pending
        else:
            self._in_flight.pop(attempt.address, None)
        record = self._logins.get(attempt.login)
        if record is None:  # evicted meanwhile: start a fresh record for what this try says
            record = self._logins[attempt.login] = _Login(in_flight=1)
        record.in_flight = max(0, record.in_flight - 1)
        if outcome == FAILED:
            self.failures += 1
            self.per_address.record(attempt.address, now)
            record.failures += 1
            record.last_failure = now
            trust = record.trusted.get(attempt.address)
            if trust is not None:
                trust.failures += 1
        elif outcome == SUCCEEDED:
            record.trusted.pop(attempt.address, None)
            record.trusted[attempt.address] = _Trust(now)
            while len(record.trusted) > TRUSTED_PER_LOGIN:
                record.trusted.popitem(last=False)
        if record.empty:
            del self._logins[attempt.login]

    def figures(self, now: datetime) -> dict[str, int]:
        backing_off = 0
        for record in list(self._logins.values()):
            record.forget_old(now, self.policy.per_login)
            backing_off += self._login_wait(record, now) is not None
        return {
            "failed_logins": self.failures,
            "refused": self.refused_per_address + self.refused_per_login,
            "refused_per_address": self.refused_per_address,
            "refused_per_login": self.refused_per_login,
            "addresses_refused_now": self.per_address.limited(now),
            "logins_backing_off_now": backing_off,
        }
