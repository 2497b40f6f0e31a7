"""The PKI (server/pki): keys, CAs, the data-directory layout, factory certificates, revocation and
CRL, trusted manufacturers, EST identity certificates (ENR-8) and the SSLContext builders."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.domain.errors import DomainError
from server.pki import CertificateAuthority, Pki, ensure_pki, est, issue_factory_certificate, tls
from server.pki.authority import subject_text
from server.pki.keys import (
    check_key_type,
    describe_key,
    generate_key,
    load_private_key,
    normalize_thumbprint,
    private_key_pem,
    thumbprint,
)
from server.pki.store import PkiLayout, server_names

MAC = "A4251B0C3D5E"
HEX64 = set("0123456789ABCDEF")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "data")


def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType:
    return cert.extensions.get_extension_for_class(kind).value


def attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    return str(name.get_attributes_for_oid(oid)[0].value)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def csr_for(cn: str | None, key: object = None, *, serial_number: str | None = None) -> tuple[bytes, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = []
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if serial_number is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.DER), key


def refused(call: object, *args: object, **kwargs: object) -> DomainError:
    with pytest.raises(DomainError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


# --- keys ------------------------------------------------------------------------------------


def test_generate_key_types() -> None:
    ecdsa, rsa_key = generate_key("ecdsa-p256"), generate_key("rsa-2048")
    assert isinstance(ecdsa, ec.EllipticCurvePrivateKey) and ecdsa.curve.name == "secp256r1"
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    assert describe_key(ecdsa) == "ecdsa-p256" and describe_key(rsa_key.public_key()) == "rsa-2048"
    assert describe_key(ec.generate_private_key(ec.SECP384R1()).public_key()) == "ecdsa-p384"
    assert describe_key(ed25519.Ed25519PrivateKey.generate().public_key()) == "ed25519"


def test_unknown_key_type_is_refused() -> None:
    assert refused(check_key_type, "dsa-1024").error == "invalid-key-type"
    assert refused(generate_key, "rsa-1024").error == "invalid-key-type"


def test_private_key_pem_round_trip() -> None:
    key = generate_key()
    assert private_key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(private_key_pem(key)).private_numbers() == key.private_numbers()
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        load_private_key(ed)


def test_thumbprint_is_sha256_of_der_upper_hex(pki: Pki) -> None:
    cert = pki.manufacturer_ca.certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    assert thumbprint(cert) == hashlib.sha256(der).hexdigest().upper() == thumbprint(der)
    assert len(thumbprint(cert)) == 64 and set(thumbprint(cert)) <= HEX64


def test_normalize_thumbprint() -> None:
    tp = "ab" * 32
    assert normalize_thumbprint(tp) == tp.upper()
    assert normalize_thumbprint(":".join(["AB"] * 32)) == tp.upper()
    assert normalize_thumbprint("AB" * 31) is None and normalize_thumbprint("G" * 64) is None


# --- CertificateAuthority ----------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_ca_certificate(key_type: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ca = CertificateAuthority.create("Test CA", organization="Org", key_type=key_type, now=now)  # type: ignore[arg-type]
    cert = ca.certificate
    assert cert.subject == cert.issuer and attr(cert.subject, NameOID.COMMON_NAME) == "Test CA"
    assert attr(cert.subject, NameOID.ORGANIZATION_NAME) == "Org" and ca.organization == "Org"
    basic = ext(cert, x509.BasicConstraints)
    assert basic.ca and basic.path_length == 0  # type: ignore[attr-defined]
    usage = ext(cert, x509.KeyUsage)
    assert usage.key_cert_sign and usage.crl_sign  # type: ignore[attr-defined]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert ca.key_type == key_type and cert.serial_number > 0
    assert cert.not_valid_before_utc == now - timedelta(minutes=5)
    assert cert.not_valid_after_utc == now + timedelta(days=3650)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    cert.verify_directly_issued_by(cert)


def test_ca_leaf_never_outlives_the_ca() -> None:
    now = datetime.now(UTC)
    ca = CertificateAuthority.create("Short CA", days=30, now=now)
    leaf = ca.issue(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]),
        public_key=generate_key().public_key(),
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=365,
    )
    assert leaf.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert ca.issued(leaf) and not CertificateAuthority.create("Other").issued(leaf)


def test_serial_numbers_are_random_and_distinct(pki: Pki) -> None:
    serials = {pki.issue_factory(MAC, f"S{i}", "J179", record=False).certificate.serial_number for i in range(20)}
    assert len(serials) == 20 and all(s.bit_length() > 64 for s in serials)


# --- ensure_pki: layout, modes, idempotence ----------------------------------------------------


def test_first_start_creates_the_layout_with_private_modes(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "data")
    root = tmp_path / "data" / "pki"
    assert pki.layout.root == root
    for name in ("tls-ca", "device-ca", "manufacturer-ca", "server"):
        assert mode(root / f"{name}.key") == 0o600
        assert (root / f"{name}.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (root / "manufacturer-ca.crl").read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    assert mode(root) == 0o700 and mode(root / "trusted-manufacturers") == 0o700
    assert pki.changes == ["tls-ca", "device-ca", "manufacturer-ca", "manufacturer-crl", "server"]
    assert pki.warnings == []


def test_ensure_pki_is_idempotent(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, hostnames=["enroll.lab.example"])
    before = snapshot(tmp_path / "pki")
    second = ensure_pki(tmp_path, hostnames=["enroll.lab.example"])
    assert snapshot(tmp_path / "pki") == before and second.changes == []
    for role in ("tls_ca", "device_ca", "manufacturer_ca"):
        assert getattr(first, role).thumbprint == getattr(second, role).thumbprint
    assert thumbprint(first.server_certificate) == thumbprint(second.server_certificate)


def test_the_three_cas_are_distinct_and_named(pki: Pki) -> None:
    cns = [attr(ca.subject, NameOID.COMMON_NAME) for ca in (pki.tls_ca, pki.device_ca, pki.manufacturer_ca)]
    assert cns[0].startswith("enrollab TLS CA ") and cns[1].startswith("enrollab Device CA ")
    assert cns[2].startswith("enrollab Simulated Manufacturer CA ")
    assert len({ca.thumbprint for ca in (pki.tls_ca, pki.device_ca, pki.manufacturer_ca)}) == 3


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_key_type_applies_to_everything_created(tmp_path: Path, key_type: str) -> None:
    pki = ensure_pki(tmp_path, key_type=key_type)  # type: ignore[arg-type]
    assert {pki.tls_ca.key_type, pki.device_ca.key_type, pki.manufacturer_ca.key_type} == {key_type}
    assert describe_key(pki.server_certificate.public_key()) == key_type
    assert describe_key(pki.issue_factory(MAC, "S1", "J179").certificate.public_key()) == key_type


def test_existing_keys_keep_their_type(tmp_path: Path) -> None:
    ensure_pki(tmp_path, key_type="rsa-2048")
    again = ensure_pki(tmp_path, key_type="ecdsa-p256")
    assert again.tls_ca.key_type == "rsa-2048" and again.changes == []


def test_invalid_key_type_and_unusable_data_dir(tmp_path: Path) -> None:
    assert refused(ensure_pki, tmp_path, key_type="dsa").error == "invalid-key-type"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = refused(ensure_pki, blocker / "sub")
    assert err.error == "data-dir" and err.status == 400


def test_half_a_ca_is_damage_not_a_new_ca(tmp_path: Path) -> None:
    ensure_pki(tmp_path)
    (tmp_path / "pki" / "device-ca.crt").unlink()
    err = refused(ensure_pki, tmp_path)
    assert err.error == "pki-damaged" and "device-ca.crt" in err.detail


def test_mismatched_ca_key_is_damage(tmp_path: Path) -> None:
    ensure_pki(tmp_path)
    root = tmp_path / "pki"
    (root / "device-ca.key").write_bytes((root / "tls-ca.key").read_bytes())
    assert refused(ensure_pki, tmp_path).error == "pki-damaged"


def test_unreadable_crl_is_damage_missing_crl_is_a_warning(tmp_path: Path) -> None:
    ensure_pki(tmp_path)
    crl = tmp_path / "pki" / "manufacturer-ca.crl"
    crl.write_text("garbage")
    assert refused(ensure_pki, tmp_path).error == "pki-damaged"
    crl.unlink()
    pki = ensure_pki(tmp_path)
    assert crl.exists() and any("earlier revocations are lost" in w for w in pki.warnings)


def test_a_crl_of_another_ca_is_damage(tmp_path: Path) -> None:
    other = CertificateAuthority.create("Other")
    other.new_crl()
    ensure_pki(tmp_path)
    assert other.crl is not None
    (tmp_path / "pki" / "manufacturer-ca.crl").write_bytes(other.crl.public_bytes(serialization.Encoding.PEM))
    assert refused(ensure_pki, tmp_path).error == "pki-damaged"


# --- server certificate ------------------------------------------------------------------------


def test_server_certificate_names_and_usage(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, hostnames=["enroll.lab.example", "10.0.0.5", "[fd00::1]"])
    cert = pki.server_certificate
    assert pki.tls_ca.issued(cert)
    san = ext(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "enroll.lab.example"]  # type: ignore[attr-defined]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1", "10.0.0.5", "fd00::1"]  # type: ignore[attr-defined]
    assert list(ext(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]  # type: ignore[call-overload]
    assert not ext(cert, x509.BasicConstraints).ca  # type: ignore[attr-defined]
    assert attr(cert.subject, NameOID.COMMON_NAME) == "enroll.lab.example"
    assert pki.server_names == ["localhost", "127.0.0.1", "::1", "enroll.lab.example", "10.0.0.5", "fd00::1"]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 390 <= days <= 400


def test_server_certificate_defaults_to_loopback_names(pki: Pki) -> None:
    assert pki.server_names == ["localhost", "127.0.0.1", "::1"]


def test_server_certificate_renewed_when_hostnames_change(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, hostnames=["a.example"])
    same = ensure_pki(tmp_path, hostnames=["A.example."])  # case and the root dot do not count
    assert same.changes == []
    other = ensure_pki(tmp_path, hostnames=["b.example"])
    assert other.changes == ["server-renewed"] and "b.example" in other.server_names
    assert "a.example" not in other.server_names
    assert thumbprint(other.server_certificate) != thumbprint(first.server_certificate)
    assert other.tls_ca.thumbprint == first.tls_ca.thumbprint


def test_hostnames_none_keeps_the_current_names(tmp_path: Path) -> None:
    ensure_pki(tmp_path, hostnames=["a.example"])
    kept = ensure_pki(tmp_path)
    assert kept.changes == [] and "a.example" in kept.server_names
    reset = ensure_pki(tmp_path, hostnames=())
    assert reset.server_names == ["localhost", "127.0.0.1", "::1"]


def test_server_certificate_renewed_within_30_days_of_expiry(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    end = first.server_certificate.not_valid_after_utc
    assert "server-renewed" not in ensure_pki(tmp_path, now=end - timedelta(days=31)).changes
    renewed = ensure_pki(tmp_path, now=end - timedelta(days=29))
    assert "server-renewed" in renewed.changes
    assert renewed.server_certificate.not_valid_after_utc > end


def test_server_certificate_replaced_when_missing_or_not_from_the_tls_ca(tmp_path: Path) -> None:
    ensure_pki(tmp_path)
    (tmp_path / "pki" / "server.key").unlink()
    assert ensure_pki(tmp_path).changes == ["server"]
    foreign = CertificateAuthority.create("Foreign")
    key = generate_key()
    cert = foreign.issue(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        public_key=key.public_key(),
        extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=server_names(()),
    )
    (tmp_path / "pki" / "server.key").write_bytes(private_key_pem(key))
    (tmp_path / "pki" / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert ensure_pki(tmp_path).changes == ["server-renewed"]


@pytest.mark.parametrize("bad", ["", "has space", "under_score.example", "-lead.example", "a..b"])
def test_invalid_hostnames_are_refused(tmp_path: Path, bad: str) -> None:
    err = refused(ensure_pki, tmp_path, hostnames=[bad])
    assert err.error == "invalid-hostname"


def test_idna_hostnames() -> None:
    names = server_names(["bücher.example"])
    assert x509.DNSName("xn--bcher-kva.example") in names


# --- factory certificates ----------------------------------------------------------------------


def test_factory_certificate_subject_usage_and_issuer(pki: Pki) -> None:
    issued = pki.issue_factory("a4:25:1b:0c:3d:5e", "21WZ51234567", "J179")
    cert = issued.certificate
    assert attr(cert.subject, NameOID.COMMON_NAME) == MAC
    assert attr(cert.subject, NameOID.SERIAL_NUMBER) == "21WZ51234567"
    assert attr(cert.subject, NameOID.ORGANIZATION_NAME) == "enrollab Simulated Manufacturer"
    assert attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == "J179"
    assert subject_text(cert.subject).startswith(f"CN={MAC},serialNumber=21WZ51234567,")
    assert (issued.mac, issued.serial, issued.model) == (MAC, "21WZ51234567", "J179")
    assert list(ext(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # type: ignore[call-overload]
    assert not ext(cert, x509.BasicConstraints).ca  # type: ignore[attr-defined]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert pki.manufacturer_ca.issued(cert) and not pki.tls_ca.issued(cert)
    assert issued.thumbprint == thumbprint(cert) and len(issued.thumbprint) == 64
    assert set(issued.thumbprint) <= HEX64
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 3640


def test_factory_certificate_manufacturer_and_validity_overrides(pki: Pki) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    issued = pki.issue_factory(MAC, "S1", "K175", manufacturer="Acme", not_before=past, not_after=past + timedelta(1))
    assert attr(issued.certificate.subject, NameOID.ORGANIZATION_NAME) == "Acme"
    assert issued.certificate.not_valid_after_utc < datetime.now(UTC)


@pytest.mark.parametrize(
    ("mac", "serial", "model", "error"),
    [
        ("not-a-mac", "S1", "J179", "invalid-mac"),
        (MAC, "has space", "J179", "invalid-serial"),
        (MAC, "S1", "", "invalid-model"),
        (MAC, "S1", "-J179", "invalid-model"),
    ],
)
def test_factory_certificate_input_is_validated(pki: Pki, mac: str, serial: str, model: str, error: str) -> None:
    assert refused(pki.issue_factory, mac, serial, model).error == error


def test_factory_certificate_is_recorded_and_written(pki: Pki, tmp_path: Path) -> None:
    issued = pki.issue_factory(MAC, "S1", "J179")
    records = pki.factory_records()
    assert [(r.thumbprint, r.cert_serial, r.mac, r.serial, r.model) for r in records] == [
        (issued.thumbprint, issued.certificate.serial_number, MAC, "S1", "J179")
    ]
    pki.issue_factory(MAC, "S2", "J179", record=False)
    assert len(pki.factory_records()) == 1
    key_path, cert_path = issued.write(tmp_path / "phone")
    assert key_path.name == "phone.key" and cert_path.name == "phone.crt"
    assert mode(key_path) == 0o600
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == issued.certificate
    assert load_private_key(key_path.read_bytes()).public_key() == issued.key.public_key()


def test_issue_factory_certificate_from_any_ca() -> None:
    ca = CertificateAuthority.create("Acme Devices CA", organization="Acme", key_type="rsa-2048")
    issued = issue_factory_certificate(ca, mac=MAC, serial="S1", model="B199")
    assert attr(issued.certificate.subject, NameOID.ORGANIZATION_NAME) == "Acme"
    assert describe_key(issued.key) == "rsa-2048" and ca.issued(issued.certificate)
    usage = ext(issued.certificate, x509.KeyUsage)
    assert usage.digital_signature and usage.key_encipherment  # type: ignore[attr-defined]


# --- revocation and CRL -------------------------------------------------------------------------


def crl_of(pki: Pki) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(pki.layout.manufacturer_crl.read_bytes())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_fresh_crl_is_empty_signed_and_long_lived(pki: Pki) -> None:
    crl = crl_of(pki)
    assert len(crl) == 0 and crl.issuer == pki.manufacturer_ca.subject
    assert crl.is_signature_valid(pki.manufacturer_ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl_number(crl) == 1
    assert crl.next_update_utc is not None and crl.next_update_utc - datetime.now(UTC) > timedelta(days=360)
    crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_revoke_by_thumbprint_persists_to_the_crl(pki: Pki) -> None:
    victim, bystander = pki.issue_factory(MAC, "S1", "J179"), pki.issue_factory("A4251B0C3D5F", "S2", "J179")
    assert pki.revoke_factory(victim.thumbprint.lower()) == [victim.thumbprint]
    crl = crl_of(pki)
    assert [entry.serial_number for entry in crl] == [victim.certificate.serial_number]
    assert crl.get_revoked_certificate_by_serial_number(bystander.certificate.serial_number) is None
    assert crl.is_signature_valid(pki.manufacturer_ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl_number(crl) == 2
    assert pki.is_revoked(victim.certificate) and not pki.is_revoked(bystander.certificate)
    reloaded = ensure_pki(pki.layout.root.parent)
    assert reloaded.is_revoked(victim.certificate)


def test_revoke_by_device_serial_takes_every_certificate_of_it(pki: Pki) -> None:
    one, two = pki.issue_factory(MAC, "S1", "J179"), pki.issue_factory(MAC, "S1", "J179")
    other = pki.issue_factory(MAC, "S2", "J179")
    assert sorted(pki.revoke_factory("S1")) == sorted([one.thumbprint, two.thumbprint])
    assert {e.serial_number for e in crl_of(pki)} == {one.certificate.serial_number, two.certificate.serial_number}
    assert not pki.is_revoked(other.certificate)


def test_revoke_with_colons_a_reason_and_a_certificate(pki: Pki) -> None:
    issued = pki.issue_factory(MAC, "S1", "J179")
    colon = ":".join(issued.thumbprint[i : i + 2] for i in range(0, 64, 2))
    pki.revoke_factory(colon, reason=x509.ReasonFlags.key_compromise)
    entry = crl_of(pki).get_revoked_certificate_by_serial_number(issued.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    unrecorded = pki.issue_factory(MAC, "S9", "J179", record=False)
    assert pki.revoke_factory(unrecorded.certificate) == [unrecorded.thumbprint]
    assert pki.is_revoked(unrecorded.certificate)


def test_revoking_twice_changes_nothing(pki: Pki) -> None:
    issued = pki.issue_factory(MAC, "S1", "J179")
    pki.revoke_factory(issued.thumbprint)
    before = pki.layout.manufacturer_crl.read_bytes()
    assert pki.revoke_factory(issued.thumbprint) == [issued.thumbprint]
    assert pki.layout.manufacturer_crl.read_bytes() == before


def test_revoke_refusals(pki: Pki) -> None:
    err = refused(pki.revoke_factory, "NOPE")
    assert err.error == "unknown-certificate" and err.status == 404
    assert refused(pki.revoke_factory, "F" * 64).error == "unknown-certificate"
    assert refused(pki.revoke_factory, "xyz", by="thumbprint").error == "invalid-thumbprint"
    issued = pki.issue_factory(MAC, "S1", "J179")
    assert refused(pki.revoke_factory, issued.thumbprint, by="serial").error == "unknown-certificate"
    foreign = issue_factory_certificate(CertificateAuthority.create("X"), mac=MAC, serial="S1", model="J179")
    assert refused(pki.revoke_factory, foreign.certificate).error == "foreign-certificate"


def test_revocation_in_another_process_is_seen_after_reload(pki: Pki) -> None:
    issued = pki.issue_factory(MAC, "S1", "J179")
    other = ensure_pki(pki.layout.root.parent)  # the CLI, say
    other.revoke_factory(issued.thumbprint)
    assert not pki.is_revoked(issued.certificate)
    pki.reload()
    assert pki.is_revoked(issued.certificate)
    later = pki.issue_factory(MAC, "S2", "J179")
    pki.revoke_factory(later.thumbprint)  # re-reads the CRL first: the other revocation stays
    assert {e.serial_number for e in crl_of(pki)} == {issued.certificate.serial_number, later.certificate.serial_number}


def test_crl_resigned_before_it_expires(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    issued = pki.issue_factory(MAC, "S1", "J179")
    pki.revoke_factory(issued.thumbprint)
    next_update = crl_of(pki).next_update_utc
    assert next_update is not None
    later = ensure_pki(tmp_path, now=next_update - timedelta(days=10))
    assert "manufacturer-crl" in later.changes
    crl = crl_of(later)
    assert crl.next_update_utc is not None and crl.next_update_utc > next_update
    assert [e.serial_number for e in crl] == [issued.certificate.serial_number] and crl_number(crl) == 3


# --- trusted manufacturers ----------------------------------------------------------------------


def foreign_ca() -> tuple[CertificateAuthority, bytes, bytes]:
    ca = CertificateAuthority.create("Acme Phones CA", organization="Acme")
    crl = ca.new_crl()
    return ca, ca.certificate.public_bytes(serialization.Encoding.PEM), crl.public_bytes(serialization.Encoding.DER)


def test_trusted_manufacturer_joins_the_bundle(pki: Pki) -> None:
    ca, pem, crl = foreign_ca()
    path = pki.trust_manufacturer("acme", pem, crl)
    assert path == pki.layout.trusted_dir / "acme.pem"
    assert pki.manufacturer_bundle == [pki.layout.manufacturer_ca_cert, path]
    assert [t.name for t in pki.trusted] == ["acme"] and pki.warnings == []
    trust = pki.device_trust_pem()
    assert trust.count(b"BEGIN CERTIFICATE") == 2 and trust.count(b"BEGIN X509 CRL") == 2
    again = ensure_pki(pki.layout.root.parent)
    assert [t.certificates[0] for t in again.trusted] == [ca.certificate]


def test_trusted_manufacturer_revocations_are_known(pki: Pki) -> None:
    ca, pem, _ = foreign_ca()
    device = issue_factory_certificate(ca, mac=MAC, serial="S1", model="J179")
    ca.revoke([device.certificate.serial_number])
    assert ca.crl is not None
    pki.trust_manufacturer("acme", pem, ca.crl.public_bytes(serialization.Encoding.PEM))
    assert pki.is_revoked(device.certificate)


def test_trusted_manufacturer_files_without_a_usable_crl_are_skipped(pki: Pki) -> None:
    trusted = pki.layout.trusted_dir
    _, pem, _ = foreign_ca()
    (trusted / "nocrl.pem").write_bytes(pem)
    _, other_pem, other_crl = foreign_ca()
    (trusted / "wrongcrl.pem").write_bytes(pem)
    (trusted / "wrongcrl.crl").write_bytes(other_crl)
    (trusted / "garbage.pem").write_text("not a certificate")
    leaf = pki.issue_factory(MAC, "S1", "J179").cert_pem
    (trusted / "leaf.pem").write_bytes(leaf)
    (trusted / "leaf.crl").write_bytes(other_crl)
    pki.reload()
    assert pki.trusted == [] and pki.manufacturer_bundle == [pki.layout.manufacturer_ca_cert]
    text = "\n".join(pki.warnings)
    for label in ("nocrl", "wrongcrl", "garbage", "leaf"):
        assert f"trusted-manufacturers/{label}" in text
    assert "not a CA certificate" in text and "has no nocrl.crl" in text


def test_trusted_manufacturer_with_an_expired_crl_warns(pki: Pki) -> None:
    ca, pem, _ = foreign_ca()
    old = ca.new_crl(now=datetime.now(UTC) - timedelta(days=400))
    pki.trust_manufacturer("acme", pem, old.public_bytes(serialization.Encoding.PEM))
    assert [t.name for t in pki.trusted] == ["acme"]
    assert any("acme.crl expired" in w for w in pki.warnings)


def test_trust_manufacturer_refusals(pki: Pki) -> None:
    _, pem, crl = foreign_ca()
    assert refused(pki.trust_manufacturer, "../evil", pem, crl).error == "invalid-manufacturer-ca"
    assert refused(pki.trust_manufacturer, "acme", pem, b"junk").error == "invalid-manufacturer-ca"
    assert list(pki.layout.trusted_dir.iterdir()) == []


# --- EST (ENR-8) --------------------------------------------------------------------------------


def certs_of(body: bytes) -> list[x509.Certificate]:
    assert all(len(line) <= 64 for line in body.splitlines())
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))


def test_cacerts_is_the_device_ca(pki: Pki) -> None:
    assert certs_of(est.cacerts_pkcs7(pki)) == [pki.device_ca.certificate]


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: rsa.generate_private_key(65537, 3072),
    ],
    ids=["p256", "p384", "rsa2048", "rsa3072"],
)
def test_identity_certificate_issued(pki: Pki, make_key: Callable[[], Any]) -> None:
    key = make_key()
    der, _ = csr_for("a4:25:1b:0c:3d:5e", key)
    (cert,) = certs_of(est.issue_identity(pki, base64.b64encode(der), mac=MAC))
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MAC)])
    assert pki.device_ca.issued(cert)
    assert list(ext(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # type: ignore[call-overload]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.public_key() == key.public_key()
    assert 364 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 366


def test_identity_csr_encodings(pki: Pki) -> None:
    der, _ = csr_for(MAC)
    pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    wrapped = base64.encodebytes(der)  # 76-column lines, as a shell pipeline sends them
    for body in (der, pem, wrapped, wrapped.decode(), base64.b64encode(der).decode()):
        (cert,) = certs_of(est.issue_identity(pki, body, mac=MAC))
        assert attr(cert.subject, NameOID.COMMON_NAME) == MAC


@pytest.mark.parametrize("body", [b"", b"not base64 !!", base64.b64encode(b"\x30\x03junk"), b"-----BEGIN X--"])
def test_est_bad_csr(pki: Pki, body: bytes) -> None:
    err = refused(est.issue_identity, pki, body, mac=MAC)
    assert err.error == "est-bad-csr" and err.status == 400


def test_est_bad_csr_signature(pki: Pki) -> None:
    der, _ = csr_for(MAC)
    csr = x509.load_der_x509_csr(der)
    sig = csr.signature
    tampered = der[: -len(sig)] + bytes(sig[:-1]) + bytes([sig[-1] ^ 0x01])
    err = refused(est.issue_identity, pki, tampered, mac=MAC)
    assert err.error == "est-bad-csr" and "signature" in err.detail


@pytest.mark.parametrize(
    ("cn", "serial_number"),
    [("A4251B0C3D5F", None), (None, MAC), ("phone", None), (f"{MAC} ", None)],
    ids=["other-mac", "mac-in-serialnumber-only", "not-a-mac", "trailing-blank"],
)
def test_est_subject_mismatch(pki: Pki, cn: str | None, serial_number: str | None) -> None:
    der, _ = csr_for(cn, serial_number=serial_number)
    err = refused(est.issue_identity, pki, der, mac=MAC)
    assert err.error == "est-subject-mismatch" and err.status == 403 and MAC in err.detail


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505 - the weak key under test
        lambda: ec.generate_private_key(ec.SECP521R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["rsa1024", "p521", "ed25519"],
)
def test_est_weak_key(pki: Pki, make_key: Callable[[], Any]) -> None:
    der, _ = csr_for(MAC, make_key())
    err = refused(est.issue_identity, pki, der, mac=MAC)
    assert err.error == "est-weak-key" and err.status == 422


def test_est_key_policy_is_a_parameter(pki: Pki) -> None:
    der, _ = csr_for(MAC, rsa.generate_private_key(65537, 2048))
    strict = est.KeyPolicy(ec_curves=("secp384r1",), rsa_min_bits=3072)
    assert refused(est.issue_identity, pki, der, mac=MAC, key_policy=strict).error == "est-weak-key"
    p256, _ = csr_for(MAC)
    assert refused(est.issue_identity, pki, p256, mac=MAC, key_policy=strict).error == "est-weak-key"


# --- SSLContext builders and peer identity -------------------------------------------------------


def test_device_server_context_settings(pki: Pki) -> None:
    context = tls.device_server_context(pki)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert context.options & ssl.OP_NO_TICKET
    stats = context.cert_store_stats()
    assert stats["x509_ca"] == 1 and stats["crl"] == 1


def test_device_server_context_loads_every_trusted_manufacturer(pki: Pki) -> None:
    _, pem, crl = foreign_ca()
    pki.trust_manufacturer("acme", pem, crl)
    stats = tls.device_server_context(pki).cert_store_stats()
    assert stats["x509_ca"] == 2 and stats["crl"] == 2


def test_admin_server_context_asks_no_client_certificate(pki: Pki) -> None:
    context = tls.admin_server_context(pki)
    assert context.verify_mode == ssl.CERT_NONE and context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_client_context_accepts_paths_and_pem(pki: Pki, tmp_path: Path) -> None:
    issued = pki.issue_factory(MAC, "S1", "J179")
    key_path, cert_path = issued.write(tmp_path / "phone")
    ca_pem = pki.tls_ca_path.read_bytes()
    for context in (
        tls.client_context(pki.tls_ca_path, cert_path, key_path),
        tls.client_context(str(pki.tls_ca_path), str(cert_path), str(key_path)),
        tls.client_context(ca_pem, issued.cert_pem, issued.key_pem),
        tls.client_context(ca_pem.decode(), issued.cert_pem.decode(), issued.key_pem.decode()),
        tls.client_context(ca_pem, issued.cert_pem + issued.key_pem),
        tls.client_context(ca_pem),
    ):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] == 1


class FakeSslObject:
    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.der


class FakeTransport:
    def __init__(self, ssl_object: object) -> None:
        self.ssl_object = ssl_object

    def get_extra_info(self, key: str) -> object:
        return self.ssl_object if key == "ssl_object" else None


def test_peer_identity_from_ssl_object_or_transport(pki: Pki) -> None:
    issued = pki.issue_factory(MAC, "21WZ1", "J179")
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    expected = (MAC, "21WZ1", issued.thumbprint)
    assert tls.peer_identity(FakeSslObject(der)) == expected
    identity = tls.peer_identity(FakeTransport(FakeSslObject(der)))
    assert identity == expected and identity is not None and identity.cn == MAC
    assert tls.peer_certificate(FakeTransport(FakeSslObject(der))) == issued.certificate
    assert tls.peer_identity(FakeTransport(None)) is None
    assert tls.peer_identity(FakeSslObject(None)) is None


def test_layout_names() -> None:
    layout = PkiLayout.of("/srv/enrollab")
    assert layout.root == Path("/srv/enrollab/pki")
    assert layout.manufacturer_crl.name == "manufacturer-ca.crl" and layout.trusted_dir.name == "trusted-manufacturers"
    assert json.dumps(str(layout.issued_index)).endswith('manufacturer-issued.jsonl"')
