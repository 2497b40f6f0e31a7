"""ENR-8: identity certificates by EST (RFC 7030) on the device listener, with a CSR made by the
`openssl` binary as a phone (or a person with curl) would."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from server.runner import Running
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

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
CSR_TYPE = {"Content-Type": "application/pkcs10"}


def openssl_csr(tmp_path: Path, cn: str) -> bytes:
    """A base64 DER PKCS#10 request for a new P-256 key, as RFC 7030 wants it on the wire."""
    der = subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tmp_path / f"{cn}.key"),
            "-subj",
            f"/CN={cn}",
            "-outform",
            "DER",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return base64.encodebytes(der)


def certificates(body: bytes) -> list[x509.Certificate]:
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))


async def identity_site(cust: Customer) -> int:
    return await new_site(cust.sp, cust.id, entry(identity_certificates=True))


async def test_enr8_cacerts_is_the_device_ca(server: Running) -> None:
    phone = Phone.make(server)
    answer = await phone.request("GET", "/.well-known/est/cacerts")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/pkcs7-mime"
    assert answer.headers["Content-Transfer-Encoding"] == "base64"
    pki = server.opened.ctx.pki
    assert pki is not None
    assert certificates(answer.raw) == [pki.device_ca.certificate]


async def test_enr8_enrolled_phone_gets_an_identity_certificate_for_its_csr(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    phone = Phone.make(server)  # J179 at 4.1.11.0.9: "Avaya issued certificates" from 4.0.1
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await identity_site(cust))
    redirect = await phone.enroll()
    assert redirect["identity"] == {"est": f"{server.device_url}/.well-known/est"}

    answer = await phone.request(
        "POST", redirect["identity"]["est"] + "/simpleenroll", data=openssl_csr(tmp_path, phone.mac), headers=CSR_TYPE
    )

    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"].startswith("application/pkcs7-mime")
    (issued,) = certificates(answer.raw)
    pki = server.opened.ctx.pki
    assert pki is not None
    assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == phone.mac
    assert issued.issuer == pki.device_ca.certificate.subject
    issued.verify_directly_issued_by(pki.device_ca.certificate)
    (log,) = await enrollment_log(server, "est-simpleenroll")
    assert log.status == "SUCCESS" and log.account_id == cust.id and phone.mac in log.message


async def test_enr8_refused_when_the_firmware_lacks_avaya_issued_certificates(
    server: Running, admin: ApiClient, tmp_path: Path
) -> None:
    phone = Phone.make(server, firmware="3.0")  # J179 3.0: enrolls, no identity certificates (4.0.1)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    await zero_touch(cust, [phone], await identity_site(cust))
    redirect = await phone.enroll()
    assert (redirect["result"], redirect["identity"]) == ("redirect", None)  # ENR-4: left out

    answer = await phone.request(
        "POST", "/.well-known/est/simpleenroll", data=openssl_csr(tmp_path, phone.mac), headers=CSR_TYPE
    )

    assert (answer.status, answer["error"]) == (403, "identity-certificates-not-supported")
    (log,) = await enrollment_log(server, "est-simpleenroll")
    assert log.status == "FAIL" and "identity-certificates-not-supported" in log.message


async def test_enr8_refusals(server: Running, admin: ApiClient, tmp_path: Path) -> None:
    enrolled, plain, stranger = Phone.make(server), Phone.make(server), Phone.make(server)
    await import_phones(admin, [enrolled, plain, stranger])
    cust = await new_customer(admin)
    await zero_touch(cust, [enrolled], await identity_site(cust))
    await zero_touch(cust, [plain], await new_site(cust.sp, cust.id, entry()))
    for phone in (enrolled, plain):
        assert (await phone.enroll())["result"] == "redirect"
    path = "/.well-known/est/simpleenroll"

    async def ask(phone: Phone, body: bytes, headers: dict[str, str] = CSR_TYPE) -> tuple[int, str]:
        answer = await phone.request("POST", path, data=body, headers=headers)
        return answer.status, answer["error"]

    other_cn = openssl_csr(tmp_path, stranger.mac)
    assert await ask(enrolled, other_cn) == (403, "est-subject-mismatch")
    assert await ask(enrolled, b"bm90IGEgQ1NS\n") == (400, "est-bad-csr")
    assert await ask(enrolled, openssl_csr(tmp_path, enrolled.mac), {"Content-Type": "application/json"}) == (
        415,
        "unsupported-media-type",
    )
    assert await ask(plain, openssl_csr(tmp_path, plain.mac)) == (403, "identity-certificates-off")
    assert await ask(stranger, openssl_csr(tmp_path, stranger.mac)) == (403, "not-enrolled")
    assert [e.status for e in await enrollment_log(server, "est-simpleenroll")] == ["FAIL"] * 4
