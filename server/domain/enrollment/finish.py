"""The parts every answer shares, added to a rule's `Outcome` to make the `Decision`: the device
updates, the notifications (NTF-1) and the audit record (ENR-5, LOG-1).

Decisions:
- Notifications (NTF-1): "Device Enrollment Failure" for every refusal (`rejected`,
  `code_invalid`, `locked`, and `unknown_device` for a device that exists) to the device's
  owner and to the account a right code named; nobody when neither exists. "Enrollment Code
  Usage" to the code's account on a code enrollment. Facts never carry the code.
- Issue 13: a failure notice only for a request whose certificate CN is the body's MAC (PROTOCOL
  §2): one factory certificate could otherwise mail the owner of every MAC it names
  (`certificate-mismatch` is audited under the named device's owner, so its administrators still
  see it). How often the notices that remain are sent: `server.domain.failure_notices`.
- Audit (ENR-5/LOG-1): process ENROLLMENT, the body's MAC, the certificate subject, the client
  host, SUCCESS for `redirect`, `upgrade` and `code_required`, FAIL otherwise, a reason id and
  a message without secrets (URL password redacted, never the code's digits, only its kind).
  The body's model shows in the message only when it names another model than the imported one.
- Device updates (for a verified device only): last contact and reported firmware always;
  `enrolled_at` on a redirect; claim and lock changes as the rule decided.
"""

from __future__ import annotations

from datetime import datetime

from server.domain.enrollment.decision import (
    REFUSALS,
    SUCCESSES,
    Decision,
    DeviceUpdates,
    EnrollmentAudit,
    Notice,
)
from server.domain.enrollment.facts import EnrollmentFacts
from server.domain.enrollment.rule import Outcome, canonical_mac, parse_version
from server.domain.errors import DomainError
from server.domain.notifications import NotificationKind


def finish(facts: EnrollmentFacts, now: datetime, outcome: Outcome, *, verified: bool) -> Decision:
    """ENR-5, NTF-1: add the device updates, notifications and audit record to a rule's answer."""
    device = facts.device
    firmware = _reported_firmware(facts.request.firmware)
    updates = None
    if verified and device is not None:
        updates = DeviceUpdates(
            last_contact=now,
            firmware=firmware,
            enrolled_at=now if outcome.result == "redirect" else None,
            claim=outcome.claim,
            lock=outcome.lock,
        )
    model = device.model if device is not None else facts.request.model
    message = f"{model} {firmware}: {outcome.message}"
    if device is not None and facts.request.model != device.model:
        message += f" (the device says model {facts.request.model!r})"
    owner = device.owner_id if device is not None else None
    audit = EnrollmentAudit(
        mac=canonical_mac(facts.request.mac),
        subject=facts.certificate.subject or f"CN={facts.certificate.cn}",
        client_host=facts.request.client_host,
        status="SUCCESS" if outcome.result in SUCCESSES else "FAIL",
        reason=outcome.reason,
        message=message,
        account_id=outcome.code_account if outcome.claim is not None else owner or outcome.code_account,
    )
    return Decision(
        status=outcome.status,
        result=outcome.result,
        body={"result": outcome.result, **outcome.body},
        audit=audit,
        consume_code=outcome.consume,
        device_updates=updates,
        notify=notices(facts, now, outcome, audit, firmware),
    )


def notices(
    facts: EnrollmentFacts, now: datetime, outcome: Outcome, audit: EnrollmentAudit, firmware: str
) -> tuple[Notice, ...]:
    """NTF-1: "Device Enrollment Failure" on refusals of a known device, "Enrollment Code
    Usage" on a code enrollment."""
    device = facts.device
    if device is None or (outcome.claim is None and outcome.result not in REFUSALS):
        return ()
    common = {"mac": audit.mac, "model": device.model, "at": now.isoformat()}
    if outcome.claim is not None and outcome.code_account is not None:
        usage = {
            **common,
            "account_id": outcome.code_account,
            "account": outcome.code_account,
            "site": str(outcome.code_site),
            "result": "enrolled",
        }
        return (Notice(NotificationKind.ENROLLMENT_CODE_USAGE.value, usage),)
    if outcome.result not in REFUSALS or not speaks_for_itself(facts):
        return ()
    recipients = dict.fromkeys(r for r in (device.owner_id, outcome.code_account) if r is not None)
    detail = outcome.body.get("detail", outcome.message)
    failure = {
        **common,
        "firmware": firmware,
        "reason": outcome.reason,
        "result": outcome.result,  # not shown; a lock is news even when its reason is a wrong code's
        "detail": str(detail),
        "client_host": facts.request.client_host or "(unknown)",
    }
    return tuple(
        Notice(NotificationKind.DEVICE_ENROLLMENT_FAILURE.value, {**failure, "account_id": r}) for r in recipients
    )


def speaks_for_itself(facts: EnrollmentFacts) -> bool:
    """Is the request about the device whose certificate made it (its CN is the body's MAC)?"""
    return canonical_mac(facts.certificate.cn) == canonical_mac(facts.request.mac)


def _reported_firmware(text: str) -> str:
    try:
        return str(parse_version(text))
    except DomainError:
        return str(text)
