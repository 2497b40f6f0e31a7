"""Issue 13: a factory certificate on the deny-list, or of a manufacturer the device's account does
not allow, is refused on the routes beside the enrollment answer too — EST `simpleenroll` (ENR-8)
and DES files (ENR-6) — for a device enrolled before the refusal applied. Found by the bad-input
tier (tests/badinput/test_certificates.py): `simpleenroll` issued identity certificates to both."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.runner import Running
from tests.integration.client import ApiClient
from tests.integration.device_client import Phone, entry, import_phones, new_customer, new_site, zero_touch
from tests.integration.test_device_files import des_site

CSR_TYPE = {"Content-Type": "application/pkcs10"}


def csr(mac: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)]))
        .sign(key, hashes.SHA256())
    )
    return base64.encodebytes(request.public_bytes(serialization.Encoding.DER))


async def test_enr8_a_denied_certificate_gets_no_identity_certificate(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await new_site(cust.sp, cust.id, entry(identity_certificates=True)))
    assert (await phone.enroll())["result"] == "redirect"
    assert (
        await phone.request("POST", "/.well-known/est/simpleenroll", data=csr(phone.mac), headers=CSR_TYPE)
    ).status == 200

    body = {"thumbprints": [phone.factory.thumbprint], "reason": "stolen in transit"}
    (await admin.post("/certificates/denied", body)).ok()

    refused = await phone.request("POST", "/.well-known/est/simpleenroll", data=csr(phone.mac), headers=CSR_TYPE)
    assert (refused.status, refused["error"]) == (403, "certificate-denied")
    assert "stolen in transit" in refused["detail"]


async def test_enr8_an_account_that_allows_no_manufacturer_gets_no_identity_certificate(
    server: Running, admin: ApiClient
) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await new_site(cust.sp, cust.id, entry(identity_certificates=True)))
    assert (await phone.enroll())["result"] == "redirect"

    (await cust.sp.call("PUT", f"/accounts/{cust.id}/manufacturers", {"manufacturers": []})).ok()

    refused = await phone.request("POST", "/.well-known/est/simpleenroll", data=csr(phone.mac), headers=CSR_TYPE)
    assert (refused.status, refused["error"]) == (403, "manufacturer-not-allowed")


async def test_enr6_a_denied_certificate_gets_no_site_files(server: Running, admin: ApiClient) -> None:
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await des_site(cust))
    assert (await phone.enroll())["result"] == "redirect"
    assert (await phone.request("GET", "/device/v1/files/46xxsettings.txt")).status == 200

    (await admin.post("/certificates/denied", {"thumbprints": [phone.factory.thumbprint], "reason": "x"})).ok()

    refused = await phone.request("GET", "/device/v1/files/46xxsettings.txt")
    assert (refused.status, refused["error"]) == (404, "file-not-found")
