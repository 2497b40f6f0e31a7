"""The scripted DES over real mutual TLS, driven by simulated phones (and by a bare aiohttp client
where a phone would never send the request): scripts, records, firmware, DES files, EST."""

from __future__ import annotations

import base64
import itertools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID

from harness.scripted_des import (
    ScriptedDES,
    code_invalid,
    code_required,
    locked,
    redirect,
    rejected,
    upgrade,
)
from server.pki.tls import client_context
from simulators.clock import VirtualClock
from simulators.factory import ManufacturerCA
from simulators.identity import PhoneIdentity
from simulators.phone import Faults, OutcomeResult, Phone, PhoneEnvironment, User

HOSTS = {"des.enrollab.test": "127.0.0.1"}
_macs = itertools.count(0xA00001)


@pytest.fixture(scope="module")
def manufacturer() -> ManufacturerCA:
    return ManufacturerCA.generate("Scripted DES Test Manufacturer CA", "enrollab tests")


@pytest.fixture
async def des(manufacturer: ManufacturerCA) -> AsyncIterator[ScriptedDES]:
    async with ScriptedDES(manufacturer.cert_pem) as server:
        yield server


@pytest.fixture
async def env(des: ScriptedDES) -> AsyncIterator[PhoneEnvironment]:
    async with PhoneEnvironment(des.url, [des.ca_pem], HOSTS, clock=VirtualClock()) as environment:
        yield environment


def make_phone(
    manufacturer: ManufacturerCA, env: PhoneEnvironment, model: str = "J179", firmware: str = "4.1.11.0.9",
    *, issuer: ManufacturerCA | None = None, **kwargs: Any,
) -> Phone:
    identity = PhoneIdentity(model, firmware, f"A4251B{next(_macs):06X}", f"21WZ{next(_macs)}")
    creds = (issuer or manufacturer).issue(identity.mac, identity.serial, model)
    return Phone(identity, creds.key_pem, creds.cert_pem, env, **kwargs)


def names(phone: Phone) -> list[str]:
    return [e.name for e in phone.events]


async def test_des_hosted_files_over_the_same_mutual_tls(des: ScriptedDES, env: PhoneEnvironment,
                                                        manufacturer: ManufacturerCA) -> None:
    """ENR-2, ENR-6: a DES redirect; the phone fetches its settings from /device/v1/files/."""
    phone = make_phone(manufacturer, env)
    des.files["46xxsettings.txt"] = b"SET SIPDOMAIN example.test\n"
    des.script(phone.mac, redirect(des.files_url, "DES", group=12))

    outcome = await phone.boot()

    assert outcome.result is OutcomeResult.PROVISIONED, outcome
    assert outcome.params == {"SIPDOMAIN": "example.test"} and outcome.group == 12
    (enroll,) = des.enrollments(phone.mac)
    assert enroll.cn == phone.mac and enroll.status == 200 and enroll.result == "redirect"
    assert enroll.body == {"model": "J179", "firmware": "4.1.11.0.9", "mac": phone.mac,
                           "serial": phone.identity.serial, "code": None}
    assert [(r.path, r.status) for r in des.file_requests(phone.mac)] == [
        ("/device/v1/files/J100Supgrade.txt", 404),
        ("/device/v1/files/46xxsettings.txt", 200),
    ]
    assert des.pending(phone.mac) == 0


async def test_codes_reach_the_handler_but_never_the_records(des: ScriptedDES, env: PhoneEnvironment,
                                                           manufacturer: ManufacturerCA) -> None:
    """ENR-3: the handler sees the typed code; the record keeps only its length."""
    phone = make_phone(manufacturer, env, user=User(codes=["11112222", "12345678"]))
    seen: list[str | None] = []

    def check(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        seen.append(body["code"])
        return rejected("done") if body["code"] == "12345678" else code_invalid(2)

    des.script(phone.mac, code_required(["nec8"]))
    des.handle(phone.mac, check)

    outcome = await phone.boot()

    assert (outcome.result, outcome.reason) == (OutcomeResult.REJECTED, "done")
    assert seen == ["11112222", "12345678"]
    assert [r.body["code"] if r.body else None for r in des.enrollments(phone.mac)] == [None, "********", "********"]
    assert "12345678" not in repr(des.requests) and "12345678" not in repr(des.exchanges())


async def test_async_handlers_and_locked_answer_retry_after(des: ScriptedDES, env: PhoneEnvironment,
                                                            manufacturer: ManufacturerCA) -> None:
    phone = make_phone(manufacturer, env, user=User(codes=["11112222"]))

    async def lock(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return locked(1800)

    des.script(phone.mac, code_required(), lock)
    outcome = await phone.boot()
    assert outcome.result is OutcomeResult.LOCKED and outcome.detail == {"retry_after": 1800}
    assert [r.status for r in des.enrollments(phone.mac)] == [200, 423]


async def test_unknown_and_exhausted_scripts(des: ScriptedDES, env: PhoneEnvironment,
                                             manufacturer: ManufacturerCA) -> None:
    stranger = make_phone(manufacturer, env)
    scripted = make_phone(manufacturer, env)
    des.script(scripted.mac, upgrade(des.firmware("J179", "4.1.11.0.9")))

    assert (await stranger.boot()).result is OutcomeResult.UNKNOWN_DEVICE
    outcome = await scripted.boot()
    # Upgraded, re-triggered (FW-6), then nothing more was scripted.
    assert (outcome.result, outcome.reason) == (OutcomeResult.REJECTED, "script-exhausted")
    assert [r.result for r in des.of(scripted.mac)] == ["upgrade", "image", "rejected"]


async def test_firmware_images_verify_and_a_wrong_sha256_is_caught(des: ScriptedDES, env: PhoneEnvironment,
                                                                   manufacturer: ManufacturerCA) -> None:
    """FW-2: the image matches the answer's sha256; a tampered answer makes the phone keep its version."""
    good = make_phone(manufacturer, env, firmware="4.0.6.0")
    bad = make_phone(manufacturer, env, firmware="4.0.6.0")
    des.script(good.mac, upgrade(des.firmware("J179", "4.1.11.0.9")), rejected("done"))
    des.script(bad.mac, upgrade({**des.firmware("J179", "4.1.11.0.9"), "sha256": "0" * 64}))

    assert (await good.boot()).firmware == "4.1.11.0.9"
    assert [r.body["firmware"] for r in des.enrollments(good.mac) if r.body] == ["4.0.6.0", "4.1.11.0.9"]
    outcome = await bad.boot()
    assert (outcome.result, outcome.reason, outcome.firmware) == (
        OutcomeResult.UPGRADE_FAILED, "firmware-checksum-mismatch", "4.0.6.0")
    assert [r.path for r in des.firmware_downloads(bad.mac)] == ["/device/v1/firmware/J179/4.1.11.0.9"]


async def test_est_issues_an_identity_certificate_from_the_device_ca(des: ScriptedDES, env: PhoneEnvironment,
                                                                    manufacturer: ManufacturerCA) -> None:
    """ENR-8: simpleenroll with CN = MAC; the phone installs a certificate from the device CA."""
    phone = make_phone(manufacturer, env)
    des.files["46xxsettings.txt"] = b"SET A 1\n"
    des.script(phone.mac, redirect(des.files_url, "DES", identity=des.est_url))

    outcome = await phone.boot()

    assert outcome.ok and outcome.identity_certificate is not None
    cert = x509.load_pem_x509_certificate(outcome.identity_certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == phone.mac
    assert cert.issuer == des.pki.device_ca.certificate.subject
    assert [(r.path, r.result) for r in des.est_requests(phone.mac)] == [
        ("/.well-known/est/simpleenroll", "issued")]


async def test_est_refusal_knob(des: ScriptedDES, env: PhoneEnvironment, manufacturer: ManufacturerCA) -> None:
    phone = make_phone(manufacturer, env)
    des.files["46xxsettings.txt"] = b"SET A 1\n"
    des.est_refusal = (403, "identity-certificates-off")
    des.script(phone.mac, redirect(des.files_url, "DES", identity=des.est_url))
    outcome = await phone.boot()
    assert outcome.ok and outcome.identity_certificate is None and "identity-failed" in names(phone)


async def test_a_foreign_factory_certificate_ends_the_handshake(des: ScriptedDES, env: PhoneEnvironment,
                                                                manufacturer: ManufacturerCA) -> None:
    """PROTOCOL §2: a certificate that does not chain to the bundle ends the handshake; nothing recorded."""
    phone = make_phone(manufacturer, env, issuer=ManufacturerCA.generate())
    outcome = await phone.boot()
    assert (outcome.result, outcome.reason) == (OutcomeResult.UNREACHABLE, "tls-handshake-failed")
    assert des.requests == []


async def test_the_des_sends_what_the_firmware_cannot_use(des: ScriptedDES, env: PhoneEnvironment,
                                                          manufacturer: ManufacturerCA) -> None:
    """An HTTP URL to a K165 at 1.1 (ENR-4): the DES sends it, the phone refuses; the knob
    `ignore_http_refusal` makes it go there anyway."""
    strict = make_phone(manufacturer, env, "K165", "1.1")
    lax = make_phone(manufacturer, env, "K165", "1.1", faults=Faults(ignore_http_refusal=True))
    for phone in (strict, lax):
        des.script(phone.mac, redirect("http://127.0.0.1:9/", "HTTP"))
    assert (await strict.boot()).reason == "http-url-not-supported"
    await lax.boot()
    assert "non-conforming" in names(lax) and "url-refused" not in names(lax)


def _raw_context(des: ScriptedDES, manufacturer: ManufacturerCA, mac: str) -> ssl.SSLContext:
    creds = manufacturer.issue(mac, "SERIAL1", "J179")
    return client_context(des.ca_pem, creds.cert_pem, creds.key_pem)


async def test_bad_bodies_csrs_and_routes(des: ScriptedDES, manufacturer: ManufacturerCA) -> None:
    """What a phone never sends: a non-JSON body (400), a CSR for another MAC (403), a CSR that
    is not one (400), a wrong content type (415), an unknown route (404); `cacerts` answers the
    device CA. Every one is recorded with its CN."""
    mac = "A4251BFFFF01"
    context = _raw_context(des, manufacturer, mac)
    key = ec.generate_private_key(ec.SECP256R1())
    other = (x509.CertificateSigningRequestBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "A4251BFFFF02")]))
             .sign(key, hashes.SHA256()))
    csr_body = base64.encodebytes(other.public_bytes(Encoding.DER))
    pkcs10 = {"Content-Type": "application/pkcs10"}
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        base = des.ip_url
        statuses = []
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/device/v1/enroll", {"data": b"not json"}),
            ("POST", "/.well-known/est/simpleenroll", {"data": csr_body, "headers": pkcs10}),
            ("POST", "/.well-known/est/simpleenroll", {"data": b"bm90IGEgY3Ny", "headers": pkcs10}),
            ("POST", "/.well-known/est/simpleenroll", {"data": csr_body, "headers": {"Content-Type": "text/plain"}}),
            ("GET", "/device/v1/nothing", {}),
            ("GET", "/device/v1/files/absent.txt", {}),
        ]
        for method, path, kwargs in requests:
            async with session.request(method, base + path, **kwargs) as resp:
                statuses.append((resp.status, (await resp.json())["error"]))
        async with session.get(base + "/.well-known/est/cacerts") as resp:
            cacerts = pkcs7.load_der_pkcs7_certificates(base64.b64decode(await resp.read()))
    assert statuses == [(400, "invalid-body"), (403, "est-subject-mismatch"), (400, "est-bad-csr"),
                        (415, "unsupported-media-type"), (404, "not-found"), (404, "file-not-found")]
    assert cacerts == [des.pki.device_ca.certificate]
    assert {r.cn for r in des.requests} == {mac} and len(des.requests) == 7
    exchange = des.exchanges()[0]
    assert exchange["who"] == "device-api" and exchange["status"] == 400 and exchange["at"].endswith("Z")


async def test_reset_forgets_everything(des: ScriptedDES, env: PhoneEnvironment,
                                        manufacturer: ManufacturerCA) -> None:
    phone = make_phone(manufacturer, env)
    des.script(phone.mac, rejected("x"), rejected("y"))
    des.files["a"] = b"1"
    des.est_refusal = (500, "e")
    await phone.boot()
    des.reset()
    assert des.requests == [] and des.files == {} and des.est_refusal is None and des.pending(phone.mac) == 0
