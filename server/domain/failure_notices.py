"""How many "Device Enrollment Failure" notices (NTF-1) an account gets (issue 13): a device that
fails again and again, or a caller naming other devices, must not flood an account's mailbox.

    limiter = NoticeLimiter()                                # the defaults
    admitted = limiter.admit("12345678", "A4251B0C3D5E", "no-profile", now)
    if admitted is not None: ...queue the notice; if it is not written: limiter.release(admitted)

Rules (pure: the caller passes `now`; no I/O). Who may cause a notice at all is the enrollment
rules' business (`server.domain.enrollment.finish`: only a request whose certificate CN is the
body's MAC); this module says how often:
- At most one notice per recipient account, device and reason per window (`NoticePolicy.minutes`,
  default 60; the store passes the answer's result and reason, so the lock a wrong code causes is
  news of its own): a phone retrying every few minutes with the same problem mails once an hour,
  and a new reason mails at once. The notice says so (`REPEAT_NOTE`): the audit log keeps every attempt.
- At most `NoticePolicy.per_account` (default 20) notices per recipient account per window, whatever
  the devices and reasons: 1,000 phones of one customer failing together after a profile was
  removed mail 20 times, not 1,000 (the twentieth says the rest are in the audit log only).
- Windows slide: a key (or an account) is admitted again once its last notice (the oldest of its
  notices) is older than the window. A notice admitted but then not written (the enrollment lost a
  race and is decided again) is released, so the attempt that is written still gets it.
- Memory is bounded: at most `MAX_KEYS` device/reason keys and as many accounts are tracked (the
  least recently noticed go first; forgetting one can only mean one notice more, never one less).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.domain.errors import invalid

__all__ = ["MAX_KEYS", "Admitted", "NoticeLimiter", "NoticePolicy"]

MAX_KEYS = 100_000


@dataclass(frozen=True)
class NoticePolicy:
    """One notice per device and reason, and `per_account` notices, per `minutes` (per recipient)."""

    minutes: int = 60
    per_account: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.minutes, int) or not 1 <= self.minutes <= 10_080:
            raise invalid("invalid-notice-policy", "minutes is 1..10080 (a week)", value=self.minutes)
        if not isinstance(self.per_account, int) or not 1 <= self.per_account <= 100_000:
            raise invalid("invalid-notice-policy", "per_account is 1..100000", value=self.per_account)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Admitted:
    """One admitted notice: what `release` undoes, and what the notice should add to its text."""

    key: tuple[str, str, str]  # (account, MAC, reason)
    at: datetime
    previous: datetime | None  # the key's last notice before this one
    note: str  # a sentence for the notice: what further failures will and will not send


class NoticeLimiter:
    """The limits of the module docstring, per process (`ServerContext.failure_notices`)."""

    def __init__(self, policy: NoticePolicy | None = None) -> None:
        self.policy = policy or NoticePolicy()
        self._last: OrderedDict[tuple[str, str, str], datetime] = OrderedDict()
        self._sent: OrderedDict[str, deque[datetime]] = OrderedDict()
        self.held_back = 0  # notices not queued since the start (figures)

    def admit(self, account: str, mac: str, reason: str, now: datetime) -> Admitted | None:
        """Admit one failure notice for `account` about device `mac` failing for `reason`, or None
        (held back: the audit log still records the attempt)."""
        window = self.policy.window
        key = (account, mac, reason)
        previous = self._last.get(key)
        if previous is not None and now - previous < window:
            self.held_back += 1
            return None
        sent = self._sent.get(account)
        if sent is None:
            sent = self._sent[account] = deque()
        while sent and now - sent[0] >= window:
            sent.popleft()
        if len(sent) >= self.policy.per_account:
            self.held_back += 1
            return None
        sent.append(now)
        self._sent.move_to_end(account)
        self._last[key] = now
        self._last.move_to_end(key)
        self._trim()
        minutes = self.policy.minutes
        note = f"Further failures of this device for this reason in the next {minutes} minutes send no notice"
        if len(sent) == self.policy.per_account:
            note = (
                f"This is notice {self.policy.per_account} for your account in {minutes} minutes: further "
                f"enrollment failures of any device send no notice until the oldest of them is {minutes} minutes old"
            )
        return Admitted(key, now, previous, note + "; the audit log records every attempt.")

    def release(self, admitted: Admitted) -> None:
        """Undo `admit` for a notice that was not written."""
        account = admitted.key[0]
        sent = self._sent.get(account)
        if sent is not None:
            with contextlib.suppress(ValueError):
                sent.remove(admitted.at)
        if self._last.get(admitted.key) == admitted.at:
            if admitted.previous is None:
                del self._last[admitted.key]
            else:
                self._last[admitted.key] = admitted.previous

    def _trim(self) -> None:
        while len(self._last) > MAX_KEYS:
            self._last.popitem(last=False)
        while len(self._sent) > MAX_KEYS:
            self._sent.popitem(last=False)
