"""USR-3 rules: which uploaded client root CA is accepted, and which verified chain logs in whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.domain.errors import DomainError
from server.domain.login_certificates import ca_fingerprint, check_chain, parse_login_ca

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, *, ca: bool, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
          eku: list[x509.ObjectIdentifier] | None = None, days: tuple[int, int] = (-1, 30),
          key_cert_sign: bool = True) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(signer_cert.subject if signer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + timedelta(days=days[0]))
        .not_valid_after(NOW + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


ROOT = _cert("Acme Login Root", ca=True)
OTHER_ROOT = _cert("Other Login Root", ca=True)


def _chain(login: str, root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] = ROOT,
           eku: list[x509.ObjectIdentifier] | None = None) -> list[bytes]:
    leaf, _ = _cert(login, ca=False, issuer=root, eku=eku)
    return [_der(leaf), _der(root[0])]


def _refusal(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as err:
        fn(*args)
    assert err.value.status in (401, 422)
    return f"{err.value.error}: {err.value.detail}"


def test_an_uploaded_ca_is_one_ca_certificate_valid_now() -> None:
    assert parse_login_ca(_pem(ROOT[0]), NOW).fingerprint == ca_fingerprint(_pem(ROOT[0]))
    assert "not a CA" in _refusal(parse_login_ca, _pem(_cert("leaf", ca=False)[0]), NOW)
    assert "not valid now" in _refusal(parse_login_ca, _pem(_cert("old", ca=True, days=(-60, -1))[0]), NOW)
    assert "not valid now" in _refusal(parse_login_ca, _pem(_cert("early", ca=True, days=(1, 60))[0]), NOW)
    assert "signing certificates" in _refusal(parse_login_ca, _pem(_cert("nosign", ca=True, key_cert_sign=False)[0]),
                                              NOW)
    assert "one certificate, got 2" in _refusal(parse_login_ca, _pem(ROOT[0]) + _pem(OTHER_ROOT[0]), NOW)
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    assert "invalid-login-ca" in _refusal(parse_login_ca, broken, NOW)


def test_the_cn_must_equal_the_login_name_exactly() -> None:
    check_chain(_chain("alice@example.test"), "alice@example.test", _pem(ROOT[0]), set(), False)
    for other in ("Alice@example.test", "alice@example.test ", "alice"):
        assert "common name" in _refusal(check_chain, _chain(other), "alice@example.test", _pem(ROOT[0]), set(), False)


def test_only_the_users_own_accounts_ca_logs_it_in() -> None:
    chain = _chain("alice", OTHER_ROOT)
    others = {ca_fingerprint(_pem(OTHER_ROOT[0]))}
    assert "not issued by the account" in _refusal(check_chain, chain, "alice", _pem(ROOT[0]), others, False)
    assert "no client root CA" in _refusal(check_chain, _chain("alice"), "alice", None, set(), False)
    # Public CAs on: a root that is no account's CA logs in; another account's CA still does not.
    public_root = _cert("Some Public Root", ca=True)
    check_chain(_chain("alice", public_root), "alice", None, others, True)
    assert "certificate-refused" in _refusal(check_chain, chain, "alice", _pem(ROOT[0]), others, True)


def test_a_certificate_not_for_client_authentication_is_refused() -> None:
    check_chain(_chain("alice", eku=[ExtendedKeyUsageOID.CLIENT_AUTH]), "alice", _pem(ROOT[0]), set(), False)
    assert "clientAuth" in _refusal(check_chain, _chain("alice", eku=[ExtendedKeyUsageOID.SERVER_AUTH]), "alice",
                                    _pem(ROOT[0]), set(), False)
    assert "no verified certificate chain" in _refusal(check_chain, [], "alice", _pem(ROOT[0]), set(), False)
