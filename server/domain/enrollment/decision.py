"""What a decision gives the store: the answer (HTTP status, `result`, the exact JSON body), the
state changes to apply, the notifications to queue and the audit record to write (ENR-5).

Decisions:
- EC-3 under concurrency: `consume_code` is applied by the store with a conditional update
  (`UPDATE … SET enrolled = enrolled + 1 WHERE site_id = :site AND code = :code AND enrolled <
  total AND (expires_at IS NULL OR expires_at > :now)`) in the transaction that writes the
  rest of the decision. If it changes no row, the store rolls back, reloads the facts (the NEC
  now used up, expired or regenerated) and calls `decide_enrollment` again, which answers
  `code_invalid`: never one device more than the total.
- LCK-3 likewise: a `LockUpdate` with `expected_failed` is written only `WHERE failed_attempts =
  :expected_failed`; no row -> reload and decide again. Resets (`expected_failed` None) are
  unconditional.
- Device updates (for a verified device only): last contact and reported firmware always;
  `enrolled_at` on a redirect; claim and lock changes as the rules decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from server.domain.codes import CodeKind

Result = Literal["redirect", "upgrade", "code_required", "code_invalid", "locked", "rejected", "unknown_device"]
SUCCESSES = frozenset({"redirect", "upgrade", "code_required"})
REFUSALS = frozenset({"rejected", "code_invalid", "locked", "unknown_device"})


@dataclass(frozen=True)
class CodeConsumption:
    """EC-3: count one enrollment on the site's NEC — conditionally, see the module docstring."""

    site_id: int
    kind: CodeKind
    code: str = field(repr=False)


@dataclass(frozen=True)
class Claim:
    """EC-7: the device becomes the account's, associated with the site, activated — one step."""

    owner_id: str
    site_id: int


@dataclass(frozen=True)
class LockUpdate:
    """LCK-2/LCK-3: new wrong-code counter and lock. With `expected_failed`, written only while
    the stored counter still equals it (else reload and decide again); None: unconditional."""

    failed: int
    locked_until: datetime | None
    expected_failed: int | None = None


@dataclass(frozen=True)
class DeviceUpdates:
    """What the store writes on the device record, in the decision's transaction."""

    last_contact: datetime
    firmware: str
    enrolled_at: datetime | None = None
    claim: Claim | None = None
    lock: LockUpdate | None = None


class Notice(NamedTuple):
    """NTF-1: a notification kind id and the facts its template shows (`account_id`: recipient)."""

    kind: str
    facts: Mapping[str, str]


@dataclass(frozen=True)
class EnrollmentAudit:
    """ENR-5/LOG-1: the log entry of this enrollment attempt (message free of secrets)."""

    mac: str
    subject: str
    client_host: str | None
    status: Literal["SUCCESS", "FAIL"]
    reason: str
    message: str
    account_id: str | None
    process: str = "ENROLLMENT"
    action: str = "enroll"


@dataclass(frozen=True)
class Decision:
    """The answer (PROTOCOL §2) and what the store does about it."""

    status: int
    result: Result
    body: dict[str, Any]
    audit: EnrollmentAudit
    consume_code: CodeConsumption | None = None
    device_updates: DeviceUpdates | None = None
    notify: tuple[Notice, ...] = ()
