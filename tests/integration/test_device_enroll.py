"""`POST /device/v1/enroll` over real mutual-TLS sockets: every answer of PROTOCOL §2's table
(ENR-1..ENR-5, EC-6, EC-7, LCK-2, FW-2, FW-4, PRF-4), audit (ENR-5) and notifications (NTF-1)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from server.pki import CertificateAuthority
from server.pki.keys import certificate_pem
from server.runner import Running
from server.store.models import EnrollmentCode
from tests.conftest import FakeClock
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    LATEST_J,
    Phone,
    device_row,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
    notifications,
    zero_touch,
)

FAILURE = "device-enrollment-failure"


# --- 200 redirect (ENR-2) -------------------------------------------------------------------------


async def test_enr2_zero_touch_device_is_redirected_with_what_the_profile_says(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    provisioning_ca = CertificateAuthority.create("Contoso Provisioning CA", now=clock.now - timedelta(days=1))
    root_ca = certificate_pem(provisioning_ca.certificate).decode()
    url = "https://prov:s3cret@files.contoso.example/$MODEL4/$MACADDR/"
    site = await new_site(cust.sp, cust.id, entry(url, group=7, root_ca_pem=root_ca))
    await zero_touch(cust, [phone], site)

    answer = await phone.enroll()

    assert answer.status == 200, answer.body
    assert answer["result"] == "redirect"
    provisioning = answer["provisioning"]
    # Placeholders and the URL's credentials go to the device as configured (ENR-2).
    assert provisioning["url"] == url
    assert provisioning["server_type"] == "HTTPS" and provisioning["group"] == 7
    assert [pem.strip() for pem in provisioning["trust"]] == [root_ca.strip()]
    assert answer["firmware"] is None and answer["identity"] is None
    row = await device_row(server, phone.mac)
    assert row.enrolled_at == server.opened.ctx.clock() and row.firmware == LATEST_J
    # ENR-5: MAC, certificate subject, client host, status, reason — and the password redacted.
    (log,) = await enrollment_log(server)
    assert log.status == "SUCCESS" and log.client_host == "127.0.0.1" and log.account_id == cust.id
    assert phone.mac in log.message and f"serialNumber={phone.serial}" in log.message
    assert "redirect (zero-touch)" in log.message and "s3cret" not in log.message


async def test_enr7_rediscovery_reflects_the_current_state(server: Running, admin: ApiClient) -> None:
    """ENR-7: the same phone asks again after its administrator deactivated it."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, [phone], site)
    assert (await phone.enroll())["result"] == "redirect"
    (await cust.sp.post("/devices/deactivate", {"macs": [phone.mac]})).ok()
    again = await phone.enroll()
    assert (again.status, again["result"]) == (200, "code_required")


# --- 200 upgrade (FW-2) and the image itself ------------------------------------------------------


async def test_fw2_unclaimed_phone_below_latest_is_sent_the_latest_image(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server, firmware="4.0.6.0")
    await import_phones(admin, [phone])

    answer = await phone.enroll(code="12345678")  # FW-2 comes first: the code is not even looked at

    assert (answer.status, answer["result"], answer["reason"]) == (200, "upgrade", "unclaimed-latest")
    firmware = answer["firmware"]
    assert firmware["version"] == LATEST_J
    assert firmware["url"] == f"{server.device_url}/device/v1/firmware/J179/{LATEST_J}"
    image = await phone.request("GET", firmware["url"])
    assert image.status == 200 and image.headers["Content-Type"] == "application/octet-stream"
    assert hashlib.sha256(image.raw).hexdigest() == firmware["sha256"]
    assert (await device_row(server, phone.mac)).failed_attempts == 0


async def test_firmware_images_exist_only_for_catalog_releases(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    k175 = await phone.request("GET", "/device/v1/firmware/K175/1.1SP1")
    j179 = await phone.request("GET", "/device/v1/firmware/J179/4.1.3.0")
    assert k175.status == j179.status == 200
    assert k175.raw != j179.raw and len(k175.raw) == len(j179.raw) == 4096
    for path in ("/device/v1/firmware/J179/9.9.9", "/device/v1/firmware/X999/1.0", "/device/v1/firmware/J179/abc"):
        missing = await phone.request("GET", path)
        assert (missing.status, missing["error"]) == (404, "firmware-not-found"), path


# --- 200 code_required (ENR-3) ---------------------------------------------------------------------


async def test_enr3_unarranged_phone_is_asked_for_the_codes_its_firmware_takes(
    server: Running, admin: ApiClient
) -> None:
    j179, k175 = Phone.make(server), Phone.make(server, model="K175", firmware="3.1")
    await import_phones(admin, [j179, k175])
    assert (await j179.enroll()).body == {"result": "code_required", "formats": ["nec8", "nec12", "pec12"]}
    # Appendix A: Vantage phones take no provisioning enrollment code.
    assert (await k175.enroll(code="")).body == {"result": "code_required", "formats": ["nec8", "nec12"]}


# --- EC-7: a right code enrolls --------------------------------------------------------------------


async def test_ec7_nec_activates_claims_and_associates_in_one_step(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(group=4))
    code = await nec(cust.sp, site, total=5)

    answer = await phone.enroll(code=code)

    assert (answer.status, answer["result"]) == (200, "redirect"), answer.body
    assert answer["provisioning"]["group"] == 4
    device = (await cust.customer.get(f"/devices/{phone.mac}")).ok()
    assert device["owner_id"] == cust.id and device["site_id"] == site
    assert device["associated"] is True and device["activated"] is True
    assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 1
    usage = await notifications(server, "enrollment-code-usage")
    assert [n.account_id for n in usage] == [cust.id] and code not in usage[0].body
    (log,) = await enrollment_log(server)
    assert log.status == "SUCCESS" and "code-enrolled" in log.message and code not in log.message
    # Now zero-touch: discovery again needs no code (ENR-7) and counts nothing more.
    assert (await phone.enroll())["result"] == "redirect"
    assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 1


async def test_ec6_pec_is_account_id_and_site_pin(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(), pin="4321")

    answer = await phone.enroll(code=cust.id + "4321")

    assert (answer.status, answer["result"]) == (200, "redirect"), answer.body
    device = (await cust.customer.get(f"/devices/{phone.mac}")).ok()
    assert (device["owner_id"], device["site_id"], device["activated"]) == (cust.id, site, True)


# --- 422 code_invalid, 423 locked (LCK-2) ----------------------------------------------------------


async def test_lck2_third_wrong_code_locks_and_the_lock_lifts_after_the_lockout_time(
    server: Running, admin: ApiClient, clock: FakeClock
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site)
    wrong = "00000000" if code != "00000000" else "11111111"

    first, second, third = [await phone.enroll(code=wrong) for _ in range(3)]

    assert (first.status, first.body) == (422, {"result": "code_invalid", "attempts_left": 2})
    assert (second.status, second.body) == (422, {"result": "code_invalid", "attempts_left": 1})
    assert (third.status, third.body) == (423, {"result": "locked", "retry_after": 1800})
    assert third.headers["Retry-After"] == "1800"
    # Locked: the right code is refused too and changes nothing.
    right = await phone.enroll(code=code)
    assert (right.status, right["result"]) == (423, "locked")
    assert (await cust.sp.get(f"/sites/{site}/nec")).ok()["enrolled"] == 0
    clock.advance(minutes=29)
    assert (await phone.enroll(code=code)).body == {"result": "locked", "retry_after": 60}
    clock.advance(minutes=1)
    lifted = await phone.enroll(code=code)
    assert (lifted.status, lifted["result"]) == (200, "redirect"), lifted.body
    assert (await device_row(server, phone.mac)).failed_attempts == 0


async def test_lck2_administrator_activation_lifts_the_lock(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site)
    # claimed, not activated
    (await cust.customer.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    for _ in range(3):
        await phone.enroll(code="99999999" if code != "99999999" else "88888888")
    assert (await phone.enroll(code=code)).status == 423
    assert (await cust.customer.get(f"/devices/{phone.mac}")).ok()["locked"] is True

    (await cust.customer.post("/devices/activate", {"macs": [phone.mac]})).ok()

    assert (await cust.customer.get(f"/devices/{phone.mac}")).ok()["locked"] is False
    row = await device_row(server, phone.mac)
    assert (row.failed_attempts, row.locked_until) == (0, None)
    answer = await phone.enroll(code=code)
    assert (answer.status, answer["result"]) == (200, "redirect"), answer.body


async def test_ntf1_wrong_code_of_a_claimed_phone_notifies_its_owner(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    (await cust.customer.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
    answer = await phone.enroll(code="123456789012")  # a PEC-shaped code naming no account
    assert (answer.status, answer.body) == (422, {"result": "code_invalid", "attempts_left": 2})
    (note,) = await notifications(server, FAILURE)
    assert note.account_id == cust.id and phone.mac in note.body and "123456789012" not in note.body
    (log,) = await enrollment_log(server)
    assert log.status == "FAIL" and "code_invalid (wrong-code)" in log.message and log.account_id == cust.id


# --- 403 rejected (ENR-4, DEV-2, ACC-5, FW-4, PRF-4) ------------------------------------------------


async def test_dev2_not_approved_phone_is_rejected(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone], approve=False)
    answer = await phone.enroll()
    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "not-approved")
    assert answer["detail"]


async def test_acc5_phone_of_a_disabled_account_is_rejected(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, [phone], site)
    (await cust.sp.post(f"/accounts/{cust.id}/disable")).ok()

    answer = await phone.enroll()

    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "disabled-account")
    (note,) = await notifications(server, FAILURE)
    assert note.account_id == cust.id and "disabled-account" in note.body


async def test_fw4_j179_at_1_5_needs_a_manual_upgrade(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server, firmware="1.5")
    await import_phones(admin, [phone])
    answer = await phone.enroll()
    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "manual-upgrade-required")
    assert "manual upgrade to 2.0 and factory reset required" in answer["detail"]


async def test_enr4_http_url_refused_to_k165_1_1_and_sent_to_1_1sp1(server: Running, admin: ApiClient) -> None:
    old, sp1 = Phone.make(server, model="K165", firmware="1.1"), Phone.make(server, model="K165", firmware="1.1SP1")
    await import_phones(admin, [old, sp1])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry("http://prov.example.com/k165/", server_type="HTTP"))
    await zero_touch(cust, [old, sp1], site)

    refused, sent = await old.enroll(), await sp1.enroll()

    assert (refused.status, refused["result"], refused["reason"]) == (403, "rejected", "unsupported-url")
    assert "HTTP provisioning URL" in refused["detail"]
    assert (sent.status, sent["result"]) == (200, "redirect")
    assert sent["provisioning"]["url"] == "http://prov.example.com/k165/"
    failures = await notifications(server, FAILURE)
    assert [n.account_id for n in failures] == [cust.id] and old.mac in failures[0].body


async def test_enr4_ip_address_url_refused_to_a_vantage(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server, model="K175", firmware="3.1")
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry("https://10.1.2.3/phones/"))
    await zero_touch(cust, [phone], site)
    answer = await phone.enroll()
    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "unsupported-url")


async def test_prf4_code_for_a_site_without_profile_is_rejected(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await new_site(cust.sp, cust.id, None, pin="2468")
    answer = await phone.enroll(code=cust.id + "2468")
    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "no-profile")
    # A right code for a site that cannot enroll is not a wrong code (LCK-2).
    assert (await device_row(server, phone.mac)).failed_attempts == 0


# --- 404 unknown_device and certificate mismatches (ENR-1) -----------------------------------------


async def test_enr1_phone_that_was_never_imported_is_unknown(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    answer = await phone.enroll()
    assert (answer.status, answer.body) == (404, {"result": "unknown_device"})
    (log,) = await enrollment_log(server)
    assert log.status == "FAIL" and log.account_id is None and phone.mac in log.message


async def test_enr1_other_certificate_for_the_same_mac_is_unknown(server: Running, admin: ApiClient) -> None:
    imported = Phone.make(server)
    await import_phones(admin, [imported])
    cust = await new_customer(admin)
    (await cust.customer.post("/devices/claim", {"mac": imported.mac, "serial": imported.serial})).ok()
    impostor = Phone.make(server, mac=imported.mac)  # same MAC and CA, another key: another thumbprint
    impostor.serial = imported.serial

    answer = await impostor.enroll()

    assert (answer.status, answer.body) == (404, {"result": "unknown_device"})
    (log,) = await enrollment_log(server)
    assert log.status == "FAIL" and "thumbprint-mismatch" in log.message
    # The device exists, so its owner hears about it (NTF-1), and nothing about it changed.
    assert [n.account_id for n in await notifications(server, FAILURE)] == [cust.id]
    assert (await device_row(server, imported.mac)).last_contact is None


async def test_enr1_certificate_cn_must_be_the_body_mac(server: Running, admin: ApiClient) -> None:
    mine, other = Phone.make(server), Phone.make(server)
    await import_phones(admin, [mine, other])
    answer = await mine.enroll(mac=other.mac, serial=other.serial)
    assert (answer.status, answer["result"], answer["reason"]) == (403, "rejected", "certificate-mismatch")
    (log,) = await enrollment_log(server)
    assert log.status == "FAIL" and other.mac in log.message and f"CN={mine.mac}" in log.message
    assert (await device_row(server, other.mac)).last_contact is None


# --- bodies (PROTOCOL §1, §2) ----------------------------------------------------------------------


async def test_protocol_bad_bodies_are_refused_and_audited(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    not_json = await phone.request("POST", "/device/v1/enroll", data=b"{nope", headers={"Content-Type": "text/plain"})
    missing = await phone.request("POST", "/device/v1/enroll", json_body={"mac": phone.mac})
    wrong_type = await phone.request("POST", "/device/v1/enroll", json_body=phone.enroll_body(code=12345678))
    too_long = await phone.request("POST", "/device/v1/enroll", json_body=phone.enroll_body(firmware="4" * 40))
    bad_mac = await phone.enroll(mac="A4-25-1B-ZZ")
    for answer in (not_json, missing, wrong_type, too_long):
        assert (answer.status, answer["error"]) == (400, "invalid-body"), answer.body
    assert (bad_mac.status, bad_mac["error"]) == (422, "invalid-mac")
    log = await enrollment_log(server)
    assert len(log) == 5 and {e.status for e in log} == {"FAIL"}
    # Lower case and separators are fine (PROTOCOL §1).
    lower = ":".join(phone.mac[i : i + 2] for i in range(0, 12, 2)).lower()
    assert (await phone.enroll(mac=lower))["result"] == "code_required"


async def test_protocol_malformed_code_is_a_counted_wrong_code(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    answer = await phone.enroll(code="12ab")
    assert (answer.status, answer.body) == (422, {"result": "code_invalid", "attempts_left": 2})


async def test_unknown_device_routes_answer_json(server: Running) -> None:
    phone = Phone.make(server)
    missing = await phone.request("GET", "/device/v1/nothing")
    assert (missing.status, missing["error"]) == (404, "not-found")
    method = await phone.request("GET", "/device/v1/enroll")
    assert (method.status, method["error"]) == (405, "method-not-allowed")


async def test_enr5_every_attempt_is_one_audit_entry(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    answers = [await phone.enroll(), await phone.enroll(code="31415926"), await phone.enroll()]
    log = await enrollment_log(server)
    assert [e.status for e in log] == ["SUCCESS", "FAIL", "SUCCESS"]
    assert [a["result"] for a in answers] == ["code_required", "code_invalid", "code_required"]
    # The platform administrator finds them in the log viewer (LOG-1).
    q = json.dumps({"all": [{"field": "process", "op": "equals", "value": "ENROLLMENT"}]})
    listed = (await admin.get("/logs", q=q)).ok()
    assert listed["total"] == 3 and all(item["client_host"] == "127.0.0.1" for item in listed["items"])


async def test_ec3_nec_row_counts_only_enrolled_devices(server: Running, admin: ApiClient) -> None:
    """EC-3: a used-up NEC answers code_invalid and counts nothing more."""
    phones = [Phone.make(server) for _ in range(3)]
    await import_phones(admin, phones)
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site, total=2)
    answers = [await p.enroll(code=code) for p in phones]
    assert [a.status for a in answers] == [200, 200, 422]
    async with server.opened.ctx.store.transaction() as s:
        row = await s.get(EnrollmentCode, site)
        assert row is not None and row.enrolled == 2
