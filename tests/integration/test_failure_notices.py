"""NTF-1 "Device Enrollment Failure" notices without flooding (issue 13), over real mutual TLS: a
notice only for a request whose certificate CN is the body's MAC (PROTOCOL §2), at most one per
recipient, device and reason per hour, at most 20 per recipient account per hour; the audit log
keeps every attempt. Read back as an administrator reads them: `GET /notifications/outbox`."""

from __future__ import annotations

from typing import Any

from server.domain.failure_notices import NoticePolicy
from server.runner import Running
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Customer,
    Phone,
    enrollment_log,
    entry,
    import_phones,
    new_customer,
    new_site,
    zero_touch,
)

FAILURE = "device-enrollment-failure"
POLICY = NoticePolicy()


async def _failure_notices(reader: ApiClient, account_id: str | None = None) -> list[dict[str, Any]]:
    """The failure notices `reader` sees, oldest first (the outbox lists the newest first)."""
    params = {"kind": FAILURE, "limit": "1000", **({"account_id": account_id} if account_id else {})}
    return list(reversed((await reader.get("/notifications/outbox", **params)).ok()["items"]))


async def _claimed(admin: ApiClient, server: Running, n: int = 1) -> tuple[Customer, list[Phone]]:
    phones = [Phone.make(server) for _ in range(n)]
    await import_phones(admin, phones)
    cust = await new_customer(admin)
    for phone in phones:
        (await cust.customer.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    return cust, phones


async def test_ntf1_a_certificate_naming_other_macs_mails_nobody(server: Running, admin: ApiClient) -> None:
    mine = Phone.make(server)
    await import_phones(admin, [mine])
    victims = [await _claimed(admin, server) for _ in range(3)]

    for _cust, (other,) in victims:
        for _ in range(4):
            answer = await mine.enroll(mac=other.mac, serial=other.serial)
            assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "certificate-mismatch")

    for cust, _ in victims:
        assert await _failure_notices(cust.customer) == []
    assert await _failure_notices(admin) == []
    # Every attempt is audited (ENR-5), under the named device's owner: its administrators see it.
    log = await enrollment_log(server)
    assert len(log) == 12 and all("certificate-mismatch" in e.message for e in log)
    for cust, (other,) in victims:
        seen = (await cust.customer.get("/logs", limit="100")).ok()["items"]
        assert sum(other.mac in e["message"] and e["action"] == "enroll" for e in seen) == 4


async def test_ntf1_a_device_failing_again_mails_once_per_reason_and_hour(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    cust, (phone,) = await _claimed(admin, server)  # claimed, not activated: it is asked for a code
    for attempt in range(2):
        answer = await phone.enroll(code="99999999")
        assert (answer.status, answer["result"]) == (422, "code_invalid"), (attempt, answer.body)
    answer = await phone.enroll(code="99999999")  # the third wrong code locks it (LCK-2)
    assert (answer.status, answer["result"]) == (423, "locked")
    for _ in range(3):
        assert (await phone.enroll(code="99999999")).status == 423

    notes = await _failure_notices(cust.customer)
    # One for the wrong codes, one for the lock they caused, one for the refusals while locked: a
    # new reason mails at once, a repeated one does not.
    assert len(notes) == 3, [n["body"] for n in notes]
    assert all(phone.mac in n["subject"] for n in notes)
    assert "attempts left" in notes[0]["body"] and "in a row: locked" in notes[1]["body"]
    assert "Reason: locked" in notes[2]["body"]
    assert all("send no notice" in n["body"] and "the audit log records every attempt" in n["body"] for n in notes)
    assert len(await enrollment_log(server)) == 6

    clock.advance(minutes=POLICY.minutes)  # the lock (30 min) and the window are over
    assert (await phone.enroll(code="99999999")).status == 422
    notes = await _failure_notices(cust.customer)
    assert len(notes) == 4 and "attempts left" in notes[-1]["body"]


async def test_ntf1_an_impostor_certificate_for_a_mac_mails_its_owner_once(
    server: Running, admin: ApiClient
) -> None:
    cust, (imported,) = await _claimed(admin, server)
    impostor = Phone.make(server, mac=imported.mac)  # CN is the MAC, another key: not the imported one
    for _ in range(5):
        assert (await impostor.enroll(serial=imported.serial)).body == {"result": "unknown_device"}
    (note,) = await _failure_notices(cust.customer)
    assert imported.mac in note["subject"] and "thumbprint-mismatch" in note["body"]


async def test_ntf1_an_account_gets_at_most_20_failure_notices_an_hour(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    phones = [Phone.make(server) for _ in range(POLICY.per_account + 2)]
    await import_phones(admin, phones)
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, phones, site)
    (await cust.sp.post(f"/accounts/{cust.id}/disable")).ok()  # every phone now fails: disabled-account
    other_cust, (other,) = await _claimed(admin, server)

    for phone in phones:
        answer = await phone.enroll()
        assert (answer.status, answer["reason"]) == (403, "disabled-account")
    assert (await other.enroll(code="99999999")).status == 422

    notes = await _failure_notices(cust.sp, cust.id)
    assert len(notes) == POLICY.per_account
    assert [p.mac in n["subject"] for p, n in zip(phones, notes, strict=False)] == [True] * POLICY.per_account
    assert f"This is notice {POLICY.per_account} for your account" in notes[-1]["body"]
    assert len(await enrollment_log(server)) == len(phones) + 1  # every attempt is audited
    # Another account's notices are its own.
    assert len(await _failure_notices(other_cust.customer)) == 1

    clock.advance(minutes=POLICY.minutes)
    answer = await phones[-1].enroll()
    assert answer["reason"] == "disabled-account"
    notes = await _failure_notices(cust.sp, cust.id)
    assert len(notes) == POLICY.per_account + 1 and phones[-1].mac in notes[-1]["subject"]
