"""USR-3 certificate login: an account's client root CA, and whether a TLS peer's certificate
logs a user in (docs/decisions.md "Certificate login").

Pure rules on DER/PEM bytes; the TLS listener (server/pki/tls.py) has already checked the chain
and the validity dates against every trust anchor it holds, and hands over the verified chain,
leaf first, root last. Here it is decided whether that chain logs in *this* user:
- the leaf's subject CN equals the login name exactly (the guide: "the common name in the
  certificate must match your login name");
- the leaf may be used for client authentication (no extendedKeyUsage, or one with clientAuth);
- the chain's root is the user's own account's client root CA, or — when the platform trusts
  public CAs (`enrollab serve --login-public-cas`) — a root that is no account's client CA
  (so one account's CA never logs in another account's administrators).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.domain.errors import DomainError, unauthorized

MAX_PEM = 16 * 1024  # one CA certificate; a bundle or anything bigger is refused


@dataclass(frozen=True)
class LoginCa:
    """A validated client root CA: its PEM as stored, its subject and SHA-256 fingerprint."""

    pem: str
    subject: str
    fingerprint: str
    not_after: datetime


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def parse_login_ca(pem: str, now: datetime) -> LoginCa:
    """Validate an uploaded client root CA: exactly one PEM certificate, a CA (basicConstraints
    cA true), allowed to sign certificates, valid now. 422 with a stable id otherwise."""
    if len(pem) > MAX_PEM:
        raise DomainError("invalid-login-ca", f"a client root CA is one PEM certificate of at most {MAX_PEM} bytes",
                          422)
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise DomainError("invalid-login-ca", "not a PEM certificate (-----BEGIN CERTIFICATE-----)", 422) from None
    if len(certs) != 1:
        raise DomainError("invalid-login-ca", f"expected one certificate, got {len(certs)}", 422)
    cert = certs[0]
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise DomainError("invalid-login-ca", "not a CA certificate (basicConstraints cA is not true)", 422)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise DomainError("invalid-login-ca", "its keyUsage does not allow signing certificates", 422)
    except x509.ExtensionNotFound:
        pass
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise DomainError(
            "invalid-login-ca",
            f"not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})",
            422,
        )
    return LoginCa(
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        subject=cert.subject.rfc4514_string(),
        fingerprint=_fingerprint(cert),
        not_after=cert.not_valid_after_utc,
    )


def describe_login_ca(pem: str) -> LoginCa:
    """A stored client root CA, described (no validity check: it may have expired since)."""
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return LoginCa(pem, cert.subject.rfc4514_string(), _fingerprint(cert), cert.not_valid_after_utc)


def _refused(why: str) -> DomainError:
    return unauthorized("certificate-refused", f"this certificate does not log in: {why} (USR-3)")


def leaf_common_name(leaf_der: bytes) -> str | None:
    names = x509.load_der_x509_certificate(leaf_der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if len(names) == 1 else None
    return value if isinstance(value, str) else None


def check_chain(
    chain: Sequence[bytes],
    login: str,
    account_ca_pem: str | None,
    other_account_ca_fingerprints: Collection[str],
    public_cas: bool,
) -> None:
    """Decide whether the verified `chain` (DER, leaf first, root last) logs in the user `login`
    whose account's client root CA is `account_ca_pem` (module docstring). Raises 401
    `certificate-refused` saying why."""
    if not chain:
        raise _refused("the connection carries no verified certificate chain")
    leaf = x509.load_der_x509_certificate(chain[0])
    cn = leaf_common_name(chain[0])
    if cn != login:
        raise _refused(f"its common name {cn!r} is not the login name")
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in purposes:
            raise _refused("its extendedKeyUsage does not include clientAuth")
    except x509.ExtensionNotFound:
        pass
    root = _fingerprint(x509.load_der_x509_certificate(chain[-1]))
    if account_ca_pem is not None and root == _fingerprint(x509.load_pem_x509_certificate(account_ca_pem.encode())):
        return
    if public_cas and root not in other_account_ca_fingerprints:
        return
    if account_ca_pem is None and not public_cas:
        raise _refused("the account has no client root CA")
    raise _refused("it is not issued by the account's client root CA")


def ca_fingerprint(pem: str) -> str:
    return _fingerprint(x509.load_pem_x509_certificate(pem.encode()))
