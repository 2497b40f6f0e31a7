"""Bad CSRs and bad factory certificates at the device listener (issue 13; PROTOCOL §2, ENR-1,
ENR-8), over real mutual-TLS connections.

- Every `csrs.json` item (weak or unsupported keys, a broken signature, a subject that is not the
  device, not a CSR at all, the wrong content type, too large) goes to EST `simpleenroll` as the
  world's enrolled phone, whose profile asks for identity certificates: a 4xx with the manifest's
  stable id, never an identity certificate.
- Every `factory-certificates.json` item (expired, not yet valid, foreign or forged issuer,
  self-signed, wrong key usage, a weak key, revoked, none at all; and certificates that pass the
  handshake but are not the device's, or are denied, or of a manufacturer the account refuses)
  is presented as the client certificate to `POST /device/v1/enroll`, `GET /.well-known/est/cacerts`
  and `POST /.well-known/est/simpleenroll` (TLS 1.3: the server, having refused a certificate,
  closes the connection without an answer), and one the manifest says ends the handshake also to
  a TLS 1.2 handshake alone, which must fail. A refused handshake counts as refused (how it
  ended is tallied); an HTTP answer is the manifest's 4xx and id, or a documented 2xx.

Each time: no 5xx, the server (admin API and device listener) still answers, and the database
digest is unchanged (the audit log is left out: every attempt is audited, ENR-5)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from server.pki.tls import client_context
from server.runner import Running
from server.store.models import AuditLog
from tests.badinput import corpus
from tests.badinput.conftest import TLS_REFUSED, Probe, World
from tests.integration.client import Answer
from tests.integration.device_client import Phone, entry, next_mac

pytestmark = [pytest.mark.badinput, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

ENROLL, CACERTS, SIMPLEENROLL = (
    "POST /device/v1/enroll",
    "GET /.well-known/est/cacerts",
    "POST /.well-known/est/simpleenroll",
)
HANDSHAKE = "TLS 1.2 handshake"


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def quiet_handshakes() -> AsyncIterator[None]:
    """Refused handshakes are the point here; asyncio would report each one."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, _ctx: None)
    yield
    loop.set_exception_handler(previous)


@pytest.fixture
def device_probe(world: World) -> Probe:
    return Probe(world, device=True)


def good_csr(mac: str) -> bytes:
    """A P-256 CSR with CN=`mac`, base64 DER as RFC 7030 wants."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def lax_client(server: Running, cert_pem: bytes | None, key_pem: bytes | None) -> ssl.SSLContext:
    """A client context that trusts the server's TLS CA and presents `cert_pem` whatever it is: at
    OpenSSL's security level 0, so this side never refuses a weak key itself (at the default level
    it will not even load an RSA-1024 certificate) and only the server judges."""
    pki = server.opened.ctx.pki
    assert pki is not None
    context = client_context(pki.tls_ca_path)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if cert_pem is not None and key_pem is not None:
        with tempfile.TemporaryDirectory(prefix="badinput-") as tmp:
            (Path(tmp) / "c.pem").write_bytes(cert_pem)
            (Path(tmp) / "k.pem").write_bytes(key_pem)
            context.load_cert_chain(Path(tmp) / "c.pem", Path(tmp) / "k.pem")
    return context


async def device_call(
    server: Running,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
) -> Answer:
    """One HTTP/1.1 request on a TLS connection of its own (asyncio streams and the ssl module, so a
    refused handshake surfaces as the server's TLS alert), presenting `cert_pem` (None: none)."""
    context = lax_client(server, cert_pem, key_pem)
    url = urlsplit(server.device_url)
    host, port = url.hostname or "localhost", url.port or 443
    payload = body or b""
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: close",
        f"Content-Length: {len(payload)}",
    ] + ([f"Content-Type: {content_type}"] if content_type else [])
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not raw:
        raise ConnectionResetError("the server closed the connection without an answer")
    header, _, content = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert "chunked" not in headers.get("transfer-encoding", ""), headers
    parsed: Any = json.loads(content) if "json" in headers.get("content-type", "") else content
    return Answer(status, parsed)


async def tls12_handshake(server: Running, cert_pem: bytes | None, key_pem: bytes | None) -> Answer:
    """The handshake alone, with TLS 1.2 at most: there the server judges the client certificate
    before its Finished, so a refusal fails the handshake itself, where TLS 1.3 (above) only sees
    the connection close after it. Answers a 200 when the handshake completed."""
    context = lax_client(server, cert_pem, key_pem)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    url = urlsplit(server.device_url)
    _, writer = await asyncio.open_connection(url.hostname, url.port, ssl=context)
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return Answer(200, b"the TLS 1.2 handshake completed")


async def audit_rows(server: Running) -> int:
    async with server.opened.ctx.store.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditLog)) or 0)


def issued_nothing(answer: Answer) -> str | None:
    """A 2xx from simpleenroll would be an identity certificate: never for a bad input."""
    return "simpleenroll issued a certificate" if answer.status < 300 and answer.body else None


# --- the phones the certificate items need ----------------------------------------------------------


@dataclass
class Phones:
    """Besides the world's enrolled phone: another imported one (`other`), an enrolled phone whose
    certificate is on the deny-list (`denied`), and one enrolled on the site of an account whose
    allow-list names no manufacturer CA (`disallowed`)."""

    other: Phone
    denied: Phone
    disallowed: Phone


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phones(world: World) -> Phones:
    server, admin, sp = world.server, world.admin, world.sp
    other, denied, disallowed = (Phone.make(server, firmware=world.phone.firmware) for _ in range(3))
    rows = [p.import_row() for p in (other, denied, disallowed)]
    (await admin.post("/devices/import", {"devices": rows})).ok()
    (await admin.post("/devices/approve", {"macs": [p.mac for p in (other, denied, disallowed)]})).ok()
    strict = await sp.new_account("customer", name="Acme Strict")

    async def identity_site(account_id: str, name: str) -> int:
        body = {"name": name, "entries": [entry(identity_certificates=True)]}
        profile = (await sp.post("/profiles", body)).ok()["id"]
        site = {"name": name, "profile_id": profile}
        return int((await sp.post(f"/accounts/{account_id}/sites", site)).ok()["id"])

    sites = {
        denied.mac: (world.customer.account_id, int(await identity_site(world.customer.account_id, "Acme D"))),
        disallowed.mac: (strict.account_id, await identity_site(strict.account_id, "Acme Strict site")),
    }
    for phone in (denied, disallowed):
        account_id, site_id = sites[phone.mac]
        (await sp.post("/devices/claim", {"mac": phone.mac, "serial": phone.serial})).ok()
        (await sp.post("/devices/associate", {"macs": [phone.mac], "account_id": account_id, "site_id": site_id})).ok()
        (await sp.post("/devices/activate", {"macs": [phone.mac]})).ok()
        assert (await phone.enroll())["result"] == "redirect"
        # Before the refusal, each would get an identity certificate: the refusal is what stops it.
        issued = await phone.request(
            "POST",
            "/.well-known/est/simpleenroll",
            data=good_csr(phone.mac),
            headers={"Content-Type": "application/pkcs10"},
        )
        assert issued.status == 200, issued.body
    (
        await admin.post(
            "/certificates/denied",
            {"thumbprints": [denied.factory.thumbprint], "reason": "bad-input tier: stolen in transit"},
        )
    ).ok()
    (await sp.call("PUT", f"/accounts/{strict.account_id}/manufacturers", {"manufacturers": []})).ok()
    return Phones(other, denied, disallowed)


# --- CSRs --------------------------------------------------------------------------------------------


async def test_enr8_a_good_csr_is_issued_so_the_refusals_below_mean_something(world: World) -> None:
    """ENR-8: the world's phone, with a good CSR, gets its identity certificate."""
    answer = await world.phone.request(
        "POST",
        "/.well-known/est/simpleenroll",
        data=good_csr(world.phone.mac),
        headers={"Content-Type": "application/pkcs10"},
    )
    assert answer.status == 200, answer.body
    (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer.raw))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == world.phone.mac


@pytest.mark.parametrize("item", corpus.items("csr"), ids=lambda i: i.id)
async def test_enr8_a_bad_csr_is_refused(item: corpus.Item, world: World, device_probe: Probe) -> None:
    """ENR-8: a bad CSR from an enrolled phone that may have an identity certificate is a 4xx with a
    stable id, and no certificate."""
    sent = corpus.csr_item(item.spec, world.phone.mac)
    phone = world.phone
    await device_probe.send(
        item,
        SIMPLEENROLL,
        lambda: device_call(
            world.server,
            phone.factory.cert_pem,
            phone.factory.key_pem,
            "POST",
            "/.well-known/est/simpleenroll",
            body=sent.body,
            content_type=sent.content_type,
        ),
        check=issued_nothing,
    )
    device_probe.assert_clean()


# --- factory certificates ------------------------------------------------------------------------------


async def test_enr1_the_phones_own_certificate_passes_both_handshakes(world: World) -> None:
    """The control for the refusals below: a good factory certificate completes TLS 1.2 and 1.3."""
    phone = world.phone
    assert (await tls12_handshake(world.server, phone.factory.cert_pem, phone.factory.key_pem)).status == 200
    answer = await device_call(
        world.server, phone.factory.cert_pem, phone.factory.key_pem, "GET", "/.well-known/est/cacerts"
    )
    assert answer.status == 200


@pytest.mark.parametrize("item", corpus.items("factory-certificate"), ids=lambda i: i.id)
async def test_enr1_a_bad_factory_certificate_is_refused(
    item: corpus.Item, world: World, phones: Phones, device_probe: Probe
) -> None:
    """ENR-1 (PROTOCOL §2): a factory certificate that is not this device's valid, trusted, allowed
    one ends the handshake or is refused with a stable id; it never enrolls or gets an identity
    certificate."""
    server, spec = world.server, item.spec
    pki = server.opened.ctx.pki
    assert pki is not None
    device = spec.get("device")
    cert_pem: bytes | None
    key_pem: bytes | None
    if device in ("phone", "denied", "disallowed"):
        phone = {"phone": world.phone, "denied": phones.denied, "disallowed": phones.disallowed}[device]
        cert_pem, key_pem, mac, serial = phone.factory.cert_pem, phone.factory.key_pem, phone.mac, phone.serial
    else:
        mac, serial = (
            (next_mac("A4251C"), "SNUNKNOWN1") if device == "unknown" else (world.phone.mac, world.phone.serial)
        )
        made = corpus.factory_item(spec, mac, serial, pki.manufacturer_ca)
        cert_pem, key_pem = made.cert_pem, made.key_pem
        if spec.get("revoked"):
            assert made.certificate is not None
            pki.revoke_factory(made.certificate)
            server.reload_device_trust()
    if spec.get("body_mac") == "other":
        mac, serial = phones.other.mac, phones.other.serial
    body = {"model": "J179", "firmware": world.phone.firmware, "mac": mac, "serial": serial, "code": None}

    def call(method: str, path: str, data: bytes | None = None, content_type: str | None = None) -> Any:
        return lambda: device_call(server, cert_pem, key_pem, method, path, body=data, content_type=content_type)

    refused_in_handshake = item.expect.get("status") == TLS_REFUSED
    audited = await audit_rows(server)
    if refused_in_handshake:
        await device_probe.send(item, HANDSHAKE, lambda: tls12_handshake(server, cert_pem, key_pem))
    await device_probe.send(
        item, ENROLL, call("POST", "/device/v1/enroll", json.dumps(body).encode(), "application/json")
    )
    await device_probe.send(item, CACERTS, call("GET", "/.well-known/est/cacerts"))
    await device_probe.send(
        item,
        SIMPLEENROLL,
        call("POST", "/.well-known/est/simpleenroll", good_csr(mac), "application/pkcs10"),
        check=issued_nothing,
    )
    if refused_in_handshake:  # nothing reached the application: not even an audit entry (ENR-5)
        assert await audit_rows(server) == audited
    device_probe.assert_clean()
