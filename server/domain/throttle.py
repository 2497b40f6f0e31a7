"""Failure budgets against guessing (issue 13): how many failures a key (a client address, or
everyone at once) may have in a sliding window before the next try is refused for a while.

    policy = GuessingPolicy()                        # the defaults, or from the platform settings
    budget = FailureBudget(policy.per_address)
    wait = budget.retry_after("198.51.100.7", now)   # None: go on; else seconds until allowed
    budget.record("198.51.100.7", now)               # one more failure in the window

Rules (pure: the caller passes `now`; no I/O):
- A key is refused while it has `failures` failures within the last `minutes`; `retry_after`
  is the seconds until the oldest of them leaves the window (at least 1), so a refused client
  that waits that long is allowed exactly one more failure: there is no lock-out forever, and
  no way to keep a key refused except by failing again.
- Only failures are counted; a success neither counts nor clears (a guesser could otherwise mix
  a known-good request in to reset the count).
- Memory is bounded: at most `MAX_KEYS` keys are tracked (the least recently failed go first),
  each with at most `failures` timestamps.
- Several server processes (issue 17, `enrollab serve --workers N`) each keep their own counts;
  the kernel spreads one client's connections over them, so each process allows a share of the
  budget (`Budget.shared(N)`, at least 1) and all of them together about the budget itself.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from server.domain.errors import invalid

__all__ = ["CLAIM_PROOF", "Budget", "FailureBudget", "GuessGate", "GuessingPolicy", "MAX_KEYS"]

MAX_KEYS = 100_000


@dataclass(frozen=True)
class Budget:
    """`failures` failures per `minutes` (1..100,000 and 1..1,440)."""

    failures: int
    minutes: int

    def __post_init__(self) -> None:
        if not isinstance(self.failures, int) or not 1 <= self.failures <= 100_000:
            raise invalid("invalid-budget", "failures is 1..100000", value=self.failures)
        if not isinstance(self.minutes, int) or not 1 <= self.minutes <= 1440:
            raise invalid("invalid-budget", "minutes is 1..1440", value=self.minutes)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    def to_json(self) -> dict[str, int]:
        return {"failures": self.failures, "minutes": self.minutes}

    def shared(self, processes: int) -> Budget:
        """One of `processes` processes' share (module docstring): failures ÷ processes, rounded up."""
        if processes <= 1:
            return self
        return Budget(max(1, -(-self.failures // processes)), self.minutes)


@dataclass(frozen=True)
class GuessingPolicy:
    """Enrollment-code guessing (docs/decisions.md "Hardening"): per client address, and for all
    clients together. With the defaults an 8-digit code space (10^8) takes a single address
    over 9,000 years and the whole internet over 190 years to search half of."""

    per_address: Budget = field(default_factory=lambda: Budget(30, 10))
    everyone: Budget = field(default_factory=lambda: Budget(1000, 10))

    def to_json(self) -> dict[str, Any]:
        return {"per_address": self.per_address.to_json(), "global": self.everyone.to_json()}

    @classmethod
    def from_json(cls, value: Any) -> GuessingPolicy:
        default = cls()
        if not isinstance(value, dict):
            return default
        per = value.get("per_address")
        every = value.get("global")
        return cls(Budget(**per) if isinstance(per, dict) else default.per_address,
                   Budget(**every) if isinstance(every, dict) else default.everyone)


# DEV-3 claim proof (issue 13): wrong MAC/serial/label-code claims per claiming account. A person
# who mistypes a serial ten times in a quarter of an hour waits; a guesser gets 960 tries a day.
CLAIM_PROOF = Budget(10, 15)


class FailureBudget:
    """Sliding-window failure counts per key (module docstring)."""

    def __init__(self, budget: Budget, max_keys: int = MAX_KEYS) -> None:
        self.budget = budget
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, key: str, now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        start = now - self.budget.window
        while times and times[0] <= start:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def count(self, key: str, now: datetime) -> int:
        times = self._recent(key, now)
        return len(times) if times is not None else 0

    def retry_after(self, key: str, now: datetime) -> int | None:
        """None while `key` may fail again; else the whole seconds until it may."""
        times = self._recent(key, now)
        if times is None or len(times) < self.budget.failures:
            return None
        free_at = times[len(times) - self.budget.failures] + self.budget.window
        return max(1, int((free_at - now).total_seconds() + 0.999))

    def record(self, key: str, now: datetime) -> None:
        times = self._recent(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.budget.failures)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def limited(self, now: datetime) -> int:
        """How many keys are refused right now."""
        return sum(1 for key in list(self._failures) if self.retry_after(key, now) is not None)


class GuessGate:
    """The enrollment endpoint's two budgets (per address, global) under the current policy, and
    what they refused — figures for the operator (`GET /settings/guessing`). One per process."""

    GLOBAL = "*"

    def __init__(self, default: GuessingPolicy | None = None, share: int = 1) -> None:
        self.default = default or GuessingPolicy()
        self.policy = self.default
        self.share = share  # processes sharing the budgets (module docstring)
        self.per_address = FailureBudget(self.policy.per_address.shared(share))
        self.everyone = FailureBudget(self.policy.everyone.shared(share))
        self.refused = 0
        self.refused_global = 0
        self.failures = 0

    def apply(self, policy: GuessingPolicy | None) -> None:
        """Use `policy` (None: the default); counts restart when a budget changes."""
        policy = policy or self.default
        if policy == self.policy:
            return
        if policy.per_address != self.policy.per_address:
            self.per_address = FailureBudget(policy.per_address.shared(self.share))
        if policy.everyone != self.policy.everyone:
            self.everyone = FailureBudget(policy.everyone.shared(self.share))
        self.policy = policy

    def check(self, address: str | None, now: datetime) -> tuple[int, str] | None:
        """None: the request may try a code; else (seconds to wait, which budget)."""
        wait = self.per_address.retry_after(address or "?", now)
        which = "per-address"
        if wait is None:
            wait, which = self.everyone.retry_after(self.GLOBAL, now), "global"
        if wait is None:
            return None
        self.refused += 1
        self.refused_global += which == "global"
        return wait, which

    def failed(self, address: str | None, now: datetime) -> None:
        self.failures += 1
        self.per_address.record(address or "?", now)
        self.everyone.record(self.GLOBAL, now)

    def figures(self, now: datetime) -> dict[str, int]:
        return {"wrong_codes": self.failures, "refused": self.refused, "refused_global": self.refused_global,
                "addresses_refused_now": self.per_address.limited(now),
                "global_failures_in_window": self.everyone.count(self.GLOBAL, now)}
