"""The phone simulator's pure parts: URL checks (ENR-4 on the phone), placeholders (PRF-2),
code checks (ENR-3), answers (PROTOCOL §2), trust, clocks, events, factory certificates
(PROTOCOL §1), the network layer, firmware checks and EST requests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.fileserver import make_certificates
from simulators.capabilities import Capabilities
from simulators.clock import DEFAULT_START, VirtualClock, iso
from simulators.discovery import code_problem, parse_answer
from simulators.est import make_csr
from simulators.events import Event
from simulators.factory import ManufacturerCA, issue_factory_certificate, thumbprint
from simulators.firmware import FirmwareInstruction, corrupt, verify
from simulators.identity import PhoneIdentity, canonical_mac
from simulators.network import HostMapResolver, StaticNetwork, sson_server
from simulators.provisioning import expand_url, locate, max_trustcerts, redact, trustcerts_names, url_problem
from simulators.tls import HandshakePolicy, PeerCertificate, TrustStore, client_context, split_pem


@pytest.fixture(scope="module")
def caps() -> Capabilities:
    return Capabilities.load()


# --- ENR-4 on the phone, PRF-2 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "firmware", "url", "server_type", "problem"),
    [
        ("J179", "4.1.11.0.9", "https://files.example.com/J179/", "HTTPS", None),
        ("J179", "4.1.11.0.9", "http://10.0.0.5/", "HTTP", None),
        ("J179", "2.0", "http://files.example.com/", "HTTP", "http-url-not-supported"),
        ("J179", "2.0", "https://10.0.0.5/", "HTTPS", "ip-address-url-not-supported"),
        ("J139", "2.0", "https://files.example.com/", "HTTPS", "provisioning-urls-not-supported"),
        ("K165", "1.1", "http://files.example.com/", "HTTP", "http-url-not-supported"),
        ("K165", "1.1SP1", "http://files.example.com/", "HTTP", None),
        ("K175", "3.1", "https://10.0.0.5/", "HTTPS", "ip-address-url-not-supported"),
        ("K175", "3.1", "https://[2001:db8::1]/", "HTTPS", "ip-address-url-not-supported"),
        ("B199", "1.0.4.0", "https://files.example.com/", "DES", "des-server-not-supported"),
        ("CU360", "11.4.0.20", "https://10.0.0.5/", "DES", None),
        ("J179", "4.1.11.0.9", "ftp://files.example.com/", "HTTPS", "invalid-provisioning-url"),
        ("J179", "4.1.11.0.9", "https:///nohost", "HTTPS", "invalid-provisioning-url"),
    ],
)
def test_enr4_url_problem(caps: Capabilities, model: str, firmware: str, url: str, server_type: str,
                          problem: str | None) -> None:
    assert url_problem(caps, model, firmware, url, server_type) == problem


def test_prf2_placeholders_redaction_and_location() -> None:
    url = expand_url("https://u:pw@files.example.com:8443/$MODEL4/$MACADDR/$SERIALNO/", "K175", "a4251b0c3d5e", "sn1")
    assert url == "https://u:pw@files.example.com:8443/K175/A4251B0C3D5E/SN1/"
    assert redact(url) == "https://u:****@files.example.com:8443/K175/A4251B0C3D5E/SN1/"
    assert redact("https://files.example.com/") == "https://files.example.com/"
    where = locate(url)
    assert (where.origin, where.directory, where.https) == (
        "https://u:pw@files.example.com:8443/",
        "K175/A4251B0C3D5E/SN1",
        True,
    )
    assert where.url("K175/46xxsettings.txt") == "https://u:pw@files.example.com:8443/K175/46xxsettings.txt"
    assert locate("http://10.0.0.5").directory == ""


def test_trustcerts_list_and_limit() -> None:
    assert trustcerts_names({"TRUSTCERTS": "a.txt,b.pem, ,http://x/c.pem"}) == ["a.txt", "b.pem", "http://x/c.pem"]
    assert trustcerts_names({}) == []
    assert [max_trustcerts({"MAX_TRUSTCERTS": v}) for v in ("3", "0", "99", "x")] == [3, 1, 10, 6]
    assert max_trustcerts({}) == 6


# --- ENR-3 on the phone, PROTOCOL §2 answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "formats", "problem"),
    [
        ("12345678", ("nec8",), None),
        ("123456789012", ("nec8",), "code-length-not-supported"),
        ("123456789012", ("nec8", "pec12"), None),
        ("123456789012", ("nec12",), None),
        ("1234567", ("nec8", "nec12"), "code-length-not-supported"),
        ("1234abcd", ("nec8",), "code-not-numeric"),
        ("１２３４５６７８", ("nec8",), "code-not-numeric"),  # full-width digits are no ASCII digits
        ("", ("nec8",), "code-not-numeric"),
    ],
)
def test_enr3_code_problem(code: str, formats: tuple[str, ...], problem: str | None) -> None:
    assert code_problem(code, formats) == problem


def test_protocol_answers_are_read_from_their_result() -> None:
    redirect = parse_answer(200, b'{"result": "redirect", "provisioning": {}}')
    assert (redirect.result, redirect.error) == ("redirect", None)
    locked = parse_answer(423, b'{"result": "locked", "retry_after": 60}')
    assert locked.summary() == {"status": 423, "result": "locked", "retry_after": 60}
    busy = parse_answer(503, b'{"error": "busy", "detail": "try again"}')
    assert (busy.result, busy.error) == (None, "busy")
    assert parse_answer(500, b"<html>").error == "invalid-answer"
    assert parse_answer(200, b'{"result": "teapot"}').error == "http-200"
    assert parse_answer(200, b"[1]").error == "invalid-answer"


# --- trust and the phone's own certificate checks ----------------------------------------------


def test_trust_store_keeps_each_certificate_once_with_its_source() -> None:
    one, two = make_certificates("private").ca_pem, make_certificates("public").ca_pem
    store = TrustStore([one])
    assert store.add(one + two, "trustcerts") == 1
    assert store.sources == ["public-root", "trustcerts"] and store.count("trustcerts") == 1
    assert split_pem(b"junk" + one + b"more" + two) == [one, two]
    assert TrustStore([one], verify=False).roots() is None
    assert store.roots() == (one, two)
    client_context(store.roots())  # loads
    assert client_context(None).verify_mode.name == "CERT_NONE"


def test_peer_certificate_wildcards_and_skew() -> None:
    now = datetime.now(UTC).timestamp()
    exact = PeerCertificate(("files.enrollab.test",), None, now - 60, now + 86400)
    wild = PeerCertificate(("*.enrollab.test",), "files", now - 60, now + 86400)
    cn_only = PeerCertificate((), "*.example.com", now - 60, now + 86400)
    assert (exact.wildcard, wild.wildcard, cn_only.wildcard) == (False, True, True)
    assert HandshakePolicy(refuse_wildcards=True).problem(wild) == "wildcard-certificate-refused"
    assert HandshakePolicy(refuse_wildcards=True).problem(exact) is None
    assert HandshakePolicy(clock_skew=-3600).problem(exact) == "server-certificate-not-yet-valid"
    assert HandshakePolicy(clock_skew=2 * 86400).problem(exact) == "server-certificate-expired"
    assert not HandshakePolicy().active and HandshakePolicy(clock_skew=1).active


# --- clocks and events ------------------------------------------------------------------------


async def test_virtual_clock_auto_moves_to_the_latest_deadline_once() -> None:
    clock = VirtualClock()
    start = clock.now()
    await asyncio.gather(*(clock.sleep(60) for _ in range(100)))
    assert clock.now() - start == 60  # deadlines, not durations
    await clock.sleep(-5)
    assert clock.now() - start == 60
    assert iso(DEFAULT_START) == "2026-11-23T09:00:00.000Z"


async def test_virtual_clock_driven_by_the_test() -> None:
    clock = VirtualClock(auto=False)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now() - DEFAULT_START)

    tasks = [asyncio.create_task(sleeper(s)) for s in (30, 60)]
    await clock.wait_for_sleepers(2)
    clock.advance(45)
    await asyncio.sleep(0)
    assert woke == [45]  # woken at the moment the test moved to, 30 s had passed
    clock.advance_to(DEFAULT_START + 60)
    await asyncio.gather(*tasks)
    assert woke == [45, 60] and clock.sleepers == 0
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance_to(DEFAULT_START)


def test_events_are_json() -> None:
    event = Event(DEFAULT_START + 1.5, "A4251B0C3D5E", "prompt", "prompt-timeout", {"after": 60})
    assert json.loads(json.dumps(event.to_json())) == {
        "at": "2026-11-23T09:00:01.500Z",
        "t": DEFAULT_START + 1.5,
        "mac": "A4251B0C3D5E",
        "state": "prompt",
        "event": "prompt-timeout",
        "detail": {"after": 60},
    }
    assert str(event).endswith("[prompt] prompt-timeout after=60")


# --- PROTOCOL §1 identities and factory certificates -------------------------------------------


def test_identity_mac_is_canonical_and_the_object_is_small() -> None:
    ident = PhoneIdentity("J179", "4.1.3.0", "a4:25:1b:0c:3d:5e", "SN1")
    assert ident.mac == "A4251B0C3D5E" and not hasattr(ident, "__dict__")
    assert canonical_mac("A4-25-1B-0C-3D-5E") == "A4251B0C3D5E"
    with pytest.raises(ValueError, match="not a MAC"):
        canonical_mac("A4251B0C3D5")


def test_protocol1_factory_certificate() -> None:
    ca = ManufacturerCA.generate("Lab Manufacturer CA", "enrollab Simulated Manufacturer")
    creds = issue_factory_certificate(ca.key_pem, ca.cert_pem, "a4251b0c3d5e", "21WZ51234567", "K175-HW3")
    cert = x509.load_pem_x509_certificate(creds.cert_pem)
    subject = {a.oid: a.value for a in cert.subject}
    assert subject == {
        NameOID.ORGANIZATION_NAME: "enrollab Simulated Manufacturer",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "K175-HW3",
        NameOID.SERIAL_NUMBER: "21WZ51234567",
        NameOID.COMMON_NAME: "A4251B0C3D5E",
    }
    der = cert.public_bytes(serialization.Encoding.DER)
    assert creds.thumbprint == hashlib.sha256(der).hexdigest().upper() == thumbprint(creds.cert_pem)
    cert.verify_directly_issued_by(ca.certificate)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    serialization.load_pem_private_key(creds.key_pem, None)
    # Fault knobs: expired yesterday; issued by another manufacturer's CA.
    expired = x509.load_pem_x509_certificate(ca.issue("A4251B0C3D5F", "S2", "J179", expired=True).cert_pem)
    assert expired.not_valid_after_utc < datetime.now(UTC)
    foreign = issue_factory_certificate(ca.key_pem, ca.cert_pem, "A4251B0C3D60", "S3", "J179", foreign=True)
    assert x509.load_pem_x509_certificate(foreign.cert_pem).issuer != ca.certificate.subject


# --- the network layer --------------------------------------------------------------------------


async def test_network_option_242_and_lldp() -> None:
    """research §9-§10: SSON pairs; TLSSRVR wins over HTTPSRVR; LLDP only without option 242."""
    params = {"L2Q": "1", "HTTPSRVR": "10.2.248.2", "HTTPDIR": "/app/provision", "TLSSRVR": "pc.domain.com"}
    assert sson_server(params) == "https://pc.domain.com/"
    listed = {"HTTPSRVR": "10.0.0.1,10.0.0.2", "HTTPPORT": "8080", "HTTPDIR": "J100"}
    assert sson_server(listed) == "http://10.0.0.1:8080/J100/"
    assert sson_server({"TLSSRVR": "fe80::1", "TLSPORT": "443"}) == "https://[fe80::1]/"
    assert sson_server({"L2Q": "1"}) is None
    served = await StaticNetwork(option_242="TLSSRVR=files.example.com,TLSPORT=443, L2Q=1").provisioning_server()
    assert served is not None and (served.url, served.source) == ("https://files.example.com/", "dhcp-242")
    assert served.params["L2Q"] == "1"
    lldp = await StaticNetwork(lldp_file_server="10.0.0.9").provisioning_server()
    assert lldp is not None and (lldp.url, lldp.source) == ("http://10.0.0.9/", "lldp")
    assert await StaticNetwork().provisioning_server() is None


async def test_host_map_resolver() -> None:
    resolver = HostMapResolver({"Files.Enrollab.Test": "127.0.0.1"})
    (found,) = await resolver.resolve("files.enrollab.test", 443)
    assert (found["host"], found["port"], found["family"]) == ("127.0.0.1", 443, socket.AF_INET)
    (literal,) = await resolver.resolve("10.1.2.3", 80)
    assert literal["host"] == "10.1.2.3"
    await resolver.close()


# --- firmware and EST ---------------------------------------------------------------------------


def test_firmware_checks() -> None:
    image = b"ENROLLAB SIMULATED FIRMWARE IMAGE\n" * 10
    digest = hashlib.sha256(image).hexdigest()
    assert verify(image, digest) and verify(image, digest.upper())
    assert not verify(corrupt(image), digest) and len(corrupt(image)) == len(image)
    parsed = FirmwareInstruction.parse({"version": "4.1.3.0", "url": "https://x/fw", "sha256": digest})
    assert parsed == FirmwareInstruction("4.1.3.0", "https://x/fw", digest)
    assert FirmwareInstruction.parse({"version": "4.1.3.0"}) is None and FirmwareInstruction.parse(None) is None


def test_enr8_csr_names_the_mac() -> None:
    import base64

    key_pem, body = make_csr("A4251B0C3D5E")
    csr = x509.load_der_x509_csr(base64.b64decode(body))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "A4251B0C3D5E"
    assert b"PRIVATE KEY" in key_pem
