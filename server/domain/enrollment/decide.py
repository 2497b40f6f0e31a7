"""The device's enrollment answer (PROTOCOL §2): one pure decision per `POST /device/v1/enroll`.

`decide_enrollment(facts, now)` takes what the store looked up (`facts`) and returns the
`Decision` (`decision`): the answer (HTTP status, `result`, the exact JSON body), the state
changes for the store to apply, the notifications to queue and the audit record to write
(ENR-5). No I/O: the same facts give the same decision, so re-running discovery (ENR-7) needs
nothing special and always reflects the current state. The rules run in this order; the first
that answers wins (each module's docstring holds the decisions about its rules):

1. ENR-1 identity (and the deny-list), 2. DEV-2 approval, 3. ACC-5 accounts and their
   manufacturer-CA allow-lists, 4. FW-1 model and version known — `admission`
5. FW-4/FW-2 firmware gate — `firmware_policy`
6. DEV-6/ENR-2 zero-touch redirect (ENR-4 refusals and omissions) — `redirect`
7. LCK-2 lock, 8. ENR-3/DEV-7 code asked for, 9. EC code check -> EC-7 claim + redirect, or
   LCK-2 wrong code — `code_entry`

then `finish` adds the device updates, notifications (NTF-1) and audit record (ENR-5).
"""

from __future__ import annotations

from datetime import datetime

from server.domain.enrollment.admission import (
    check_accounts_enabled,
    check_approved,
    check_identity,
    check_manufacturer,
    check_model_and_firmware,
)
from server.domain.enrollment.code_entry import code_path
from server.domain.enrollment.decision import Decision
from server.domain.enrollment.facts import EnrollmentFacts
from server.domain.enrollment.finish import finish
from server.domain.enrollment.firmware_policy import gate_firmware
from server.domain.enrollment.redirect import zero_touch
from server.domain.enrollment.rule import Outcome, RuleContext, aware, aware_or_none
from server.domain.lockout import LockState


def decide_enrollment(facts: EnrollmentFacts, now: datetime) -> Decision:
    """ENR-1..7: the answer to one enrollment request; the rules run in the module's order."""
    now = aware(now)
    identity = check_identity(facts)
    if identity is not None:
        return finish(facts, now, identity, verified=False)
    device = facts.device
    assert device is not None  # check_identity answered otherwise
    early = check_approved(device) or check_accounts_enabled(facts) or check_manufacturer(facts)
    if early is not None:
        return finish(facts, now, early, verified=True)
    known = check_model_and_firmware(facts)
    if isinstance(known, Outcome):
        return finish(facts, now, known, verified=True)
    info, version = known
    stored_lock = LockState(max(0, device.failed_attempts), aware_or_none(device.locked_until))
    ctx = RuleContext(facts, now, device, info, version, stored_lock)
    outcome = gate_firmware(ctx) or zero_touch(ctx) or code_path(ctx)
    return finish(facts, now, outcome, verified=True)
