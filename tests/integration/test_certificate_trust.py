"""Issue 13: which factory certificates may enroll, over real mutual-TLS sockets — the platform's
deny-list (403 `rejected`/`certificate-denied`) and each account's manufacturer-CA allow-list
(403 `rejected`/`manufacturer-not-allowed`), both audited; neither counts as a wrong code."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from server.pki import CertificateAuthority, issue_factory_certificate
from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Phone,
    device_row,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
    next_mac,
    zero_touch,
)


def _acme(server: Running) -> CertificateAuthority:
    """A second manufacturer CA the device listener trusts, as `acme`."""
    pki = server.opened.ctx.pki
    assert pki is not None
    acme = CertificateAuthority.create("Acme Phones CA", organization="Acme")
    acme.revoke([])
    assert acme.crl is not None
    pki.trust_manufacturer("acme", acme.certificate.public_bytes(serialization.Encoding.PEM),
                           acme.crl.public_bytes(serialization.Encoding.DER))
    server.reload_device_trust()
    return acme


def _acme_phone(server: Running, acme: CertificateAuthority) -> Phone:
    mac = next_mac()
    serial = f"ACME{mac[-6:]}"
    return Phone(server, mac, serial, "J179", Phone.make(server).firmware,
                 issue_factory_certificate(acme, mac=mac, serial=serial, model="J179"))


async def test_a_denied_certificate_is_refused_with_a_reason_and_enrolls_again_once_lifted(
        server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await new_site(cust.sp, cust.id, entry()))
    assert (await phone.enroll())["result"] == "redirect"

    spaced = ":".join(phone.factory.thumbprint[i:i + 2] for i in range(0, 64, 2)).lower()
    added = (await admin.post("/certificates/denied", {"thumbprints": [spaced], "reason": "stolen in transit"})).ok()
    assert added == {"denied": [phone.factory.thumbprint], "added": [phone.factory.thumbprint]}
    listed = (await admin.get("/certificates/denied")).ok()["denied"]
    assert [(d["thumbprint"], d["reason"], d["denied_by"]) for d in listed] == [
        (phone.factory.thumbprint, "stolen in transit", "admin")]

    refused = await phone.enroll()
    assert (refused.status, refused["result"], refused["reason"]) == (403, "rejected", "certificate-denied")
    assert "stolen in transit" in refused["detail"]
    log = (await enrollment_log(server))[-1]
    assert log.status == "FAIL" and "certificate-denied" in log.message

    (await admin.call("DELETE", f"/certificates/denied/{phone.factory.thumbprint}", None)).ok()
    assert (await phone.enroll())["result"] == "redirect"
    assert (await admin.get("/certificates/denied")).ok()["denied"] == []


async def test_deny_list_input_is_checked(server: Running, admin: ApiClient) -> None:
    bad = await admin.post("/certificates/denied", {"thumbprints": ["12AB"], "reason": "x"})
    assert (bad.status, bad.body["error"]) == (422, "invalid-thumbprint")
    missing = await admin.call("DELETE", "/certificates/denied/" + "AB" * 32, None)
    assert (missing.status, missing.body["error"]) == (404, "not-denied")
    cust = await new_customer(admin)
    denied = await cust.sp.post("/certificates/denied", {"thumbprints": ["AB" * 32], "reason": "x"})
    assert (denied.status, denied.body["error"]) == (403, "forbidden-role")
    assert (await admin.get("/certificates/denied")).ok()["denied"] == []


async def test_an_allow_list_refuses_other_manufacturers_on_the_accounts_sites(
        server: Running, admin: ApiClient) -> None:
    acme = _acme(server)
    ours, theirs = Phone.make(server), _acme_phone(server, acme)
    await import_phones(admin, [ours, theirs])
    cust = await new_customer(admin)
    await zero_touch(cust, [ours, theirs], await new_site(cust.sp, cust.id, entry()))
    assert (await admin.get("/manufacturers")).ok() == {"manufacturers": ["local", "acme"]}
    assert (await theirs.enroll())["result"] == "redirect"  # no list: every trusted CA

    (await cust.customer.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": ["local"]})).ok()
    assert (await cust.customer.get(f"/accounts/{cust.id}/manufacturers")).ok() == {
        "account_id": cust.id, "manufacturers": ["local"]}
    refused = await theirs.enroll()
    assert (refused.status, refused["result"], refused["reason"]) == (403, "rejected", "manufacturer-not-allowed")
    assert "acme" in refused["detail"] and cust.id in refused["detail"]
    assert (await ours.enroll())["result"] == "redirect"

    # The service provider above it changes the list too (ACC-7); an unknown label is refused.
    unknown = await cust.sp.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": ["nokia"]})
    assert (unknown.status, unknown.body["error"]) == (422, "unknown-manufacturer")
    (await cust.sp.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": ["acme"]})).ok()
    assert (await theirs.enroll())["result"] == "redirect"
    assert (await ours.enroll())["reason"] == "manufacturer-not-allowed"
    (await cust.sp.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": None})).ok()
    assert (await ours.enroll())["result"] == "redirect"


async def test_the_codes_account_list_applies_and_is_no_wrong_code(server: Running, admin: ApiClient) -> None:
    acme = _acme(server)
    phone = _acme_phone(server, acme)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    code = await nec(cust.sp, site, total=5)
    (await cust.customer.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": ["local"]})).ok()

    for _ in range(4):  # more than the lockout's 3 attempts: a refusal is not a wrong code
        refused = await phone.enroll(code=code)
        assert (refused.status, refused["reason"]) == (403, "manufacturer-not-allowed")
    row = await device_row(server, phone.mac)
    assert row.failed_attempts == 0 and row.owner_id is None

    (await cust.customer.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": ["local", "acme"]})).ok()
    assert (await phone.enroll(code=code))["result"] == "redirect"
    assert (await device_row(server, phone.mac)).owner_id == cust.id
