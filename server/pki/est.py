"""EST (RFC 7030) for identity certificates (ENR-8): `cacerts` and `simpleenroll` bodies.

Decisions:
- The device is the one authenticated by its factory certificate (mutual TLS); its MAC comes from
  there (`mac=`). The CSR's subject CN must be that MAC; any accepted MAC form counts
  (`a4:25:1b:0c:3d:5e` = `A4251B0C3D5E`). The MAC in serialNumber alone is not accepted: a
  phone's serialNumber is its device serial, so CN is the one unambiguous place.
- The CA writes the subject itself: `CN=<MAC canonical>`; other CSR attributes and requested
  extensions are ignored (RFC 7030 §4.2.1 lets the CA decide). No SAN: a MAC is no DNS name
  and an identity certificate is a TLS client certificate, for which the CN identifies.
- Issued: clientAuth EKU, digitalSignature (+keyEncipherment for RSA), valid 1 year (never past
  the device CA), chain = the device CA from `cacerts`.
- Keys: EC P-256 or P-384, or RSA of 2048 bits or more; anything else is `est-weak-key`.
- Errors (DomainError, stable ids): `est-bad-csr` 400 (not a CSR, or its signature does not
  verify), `est-subject-mismatch` 403 (CN is not the device's MAC), `est-weak-key` 422.
- Bodies are base64 (lines of 64) of DER, as RFC 7030 §4.1.3/§4.2.3 and `openssl base64 -d` want;
  a CSR may come base64 (whitespace ignored), DER or PEM.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.domain.errors import DomainError, bad_request, invalid
from server.domain.identity import normalize_mac
from server.pki.authority import name
from server.pki.keys import describe_key
from server.pki.store import Pki

IDENTITY_DAYS = 365
CONTENT_TYPE_CSR = "application/pkcs10"
CONTENT_TYPE_PKCS7 = "application/pkcs7-mime; smime-type=certs-only"
CONTENT_TYPE_CACERTS = "application/pkcs7-mime"


@dataclass(frozen=True)
class KeyPolicy:
    """Which subject keys an identity certificate may certify."""

    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    rsa_min_bits: int = 2048

    def check(self, public_key: object) -> None:
        if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in self.ec_curves:
            return
        if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= self.rsa_min_bits:
            return
        allowed = ", ".join(describe_key_curve(c) for c in self.ec_curves)
        raise invalid(
            "est-weak-key",
            f"The CSR's key ({describe_key(public_key)}) is not accepted: use ECDSA {allowed} "  # type: ignore[arg-type]
            f"or RSA of {self.rsa_min_bits} bits or more.",
        )


def describe_key_curve(curve: str) -> str:
    return {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(curve, curve)


DEFAULT_KEY_POLICY = KeyPolicy()


def _b64(der: bytes) -> bytes:
    text = base64.b64encode(der)
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\n"


def cacerts_pkcs7(pki: Pki) -> bytes:
    """`GET /.well-known/est/cacerts` body: base64 DER PKCS#7 certs-only holding the device CA."""
    return _b64(pkcs7.serialize_certificates([pki.device_ca.certificate], serialization.Encoding.DER))


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """A PKCS#10 request from base64 (RFC 7030), DER or PEM; `est-bad-csr` when it is none, or
    when its signature does not verify (proof of possession)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    text = raw.strip()
    candidates: list[bytes] = []
    if text.startswith(b"-----BEGIN"):
        try:
            csr = x509.load_pem_x509_csr(text)
        except ValueError:
            raise _bad_csr("The PEM block is not a PKCS#10 certificate request.") from None
        return _verified(csr)
    if raw[:1] == b"\x30":  # DER (a SEQUENCE); never stripped: its last bytes may look like blanks
        candidates.append(raw)
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(re.sub(rb"\s+", b"", text), validate=True))
    for der in candidates:
        try:
            return _verified(x509.load_der_x509_csr(der))
        except ValueError:
            continue
    raise _bad_csr("The body is not a base64 (or DER) PKCS#10 certificate request.")


def _bad_csr(detail: str) -> DomainError:
    return bad_request("est-bad-csr", detail)


def _verified(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    try:
        ok = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a signature algorithm we cannot check
        ok = False
    if not ok:
        raise _bad_csr("The CSR's signature does not verify with its own key.")
    return csr


def identity_certificate(
    pki: Pki,
    csr_der_or_b64: bytes | str,
    *,
    mac: str,
    key_policy: KeyPolicy = DEFAULT_KEY_POLICY,
) -> x509.Certificate:
    """ENR-8: check the CSR against the device `mac` and the key policy; issue from the device CA."""
    canonical = normalize_mac(mac)
    csr = load_csr(csr_der_or_b64)
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if len(cns) == 1 else None
    try:
        requested = normalize_mac(cn) if isinstance(cn, str) else None
    except DomainError:
        requested = None
    if requested != canonical:
        raise DomainError(
            "est-subject-mismatch",
            f"The CSR's subject must be CN={canonical}, the MAC of the authenticated device.",
            403,
            csr.subject.rfc4514_string(),
        )
    public_key = csr.public_key()
    key_policy.check(public_key)
    assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return pki.device_ca.issue(
        subject=name(canonical),
        public_key=public_key,
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=IDENTITY_DAYS,
    )


def issue_identity(
    pki: Pki,
    csr_der_or_b64: bytes | str,
    *,
    mac: str,
    key_policy: KeyPolicy = DEFAULT_KEY_POLICY,
) -> bytes:
    """`POST /.well-known/est/simpleenroll` body: base64 DER PKCS#7 certs-only with the issued certificate."""
    cert = identity_certificate(pki, csr_der_or_b64, mac=mac, key_policy=key_policy)
    return _b64(pkcs7.serialize_certificates([cert], serialization.Encoding.DER))
