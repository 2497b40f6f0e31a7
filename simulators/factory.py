"""Factory certificates for simulated phones (PROTOCOL §1), issued with `cryptography` from a
manufacturer CA given as PEM bytes (the harness's, e.g. the reference server's DATA/pki).

A factory certificate: subject `O=<manufacturer>, OU=<model>, serialNumber=<serial>,
CN=<MAC canonical>`, clientAuth, no SAN, valid 20 years from 5 minutes ago (never past the
CA); the thumbprint is the SHA-256 of its DER in upper-case hex — what the import file carries.
Keys are ECDSA P-256: cheap to make, which matters for a fleet.

Fault knobs for negative tests: `expired=True` (validity ended yesterday), `foreign=True`
(issued by a manufacturer CA nobody trusts, the same one per process), or explicit
`not_before`/`not_after`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulators.identity import canonical_mac

__all__ = ["FactoryCredentials", "ManufacturerCA", "issue_factory_certificate", "self_signed_ca", "thumbprint"]

FACTORY_DAYS = 20 * 365
SKEW = timedelta(minutes=5)
DEFAULT_MANUFACTURER = "enrollab Simulated Manufacturer"


def thumbprint(cert_pem: bytes) -> str:
    """PROTOCOL §1: SHA-256 of the certificate's DER, 64 upper-case hex digits."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class FactoryCredentials:
    """What a phone is born with: its private key and factory certificate (PEM), and the
    certificate's thumbprint."""

    key_pem: bytes
    cert_pem: bytes
    thumbprint: str


class ManufacturerCA:
    """A manufacturer CA that can issue factory certificates (parsed once, reused per phone)."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("a manufacturer CA key is ECDSA or RSA")
        self.key = key
        self.certificate = x509.load_pem_x509_certificate(cert_pem)
        self.cert_pem = cert_pem
        self.key_pem = key_pem
        orgs = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        self.organization = str(orgs[0].value) if orgs else DEFAULT_MANUFACTURER

    @classmethod
    def generate(
        cls, common_name: str = "Foreign Manufacturer CA", organization: str = "Foreign Devices Ltd"
    ) -> ManufacturerCA:
        """A fresh self-signed CA (for foreign-certificate tests)."""
        key, cert = self_signed_ca(common_name, organization, datetime.now(UTC) - SKEW)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(key_pem, cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        mac: str,
        serial: str,
        model: str,
        *,
        manufacturer: str | None = None,
        expired: bool = False,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        now: datetime | None = None,
    ) -> FactoryCredentials:
        """A new key and factory certificate for one phone (module docstring)."""
        now = now or datetime.now(UTC)
        start = not_before or (now - SKEW)
        end = not_after or min(now + timedelta(days=FACTORY_DAYS), self.certificate.not_valid_after_utc)
        if expired:
            start, end = now - timedelta(days=FACTORY_DAYS), now - timedelta(days=1)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, manufacturer or self.organization),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, model),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
                x509.NameAttribute(NameOID.COMMON_NAME, canonical_mac(mac)),
            ]
        )
        ca_public = self.certificate.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if isinstance(ca_public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        der = cert.public_bytes(serialization.Encoding.DER)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return FactoryCredentials(key_pem, cert.public_bytes(serialization.Encoding.PEM),
                                  hashlib.sha256(der).hexdigest().upper())


def self_signed_ca(
    common_name: str, organization: str, not_before: datetime, days: int = 3650
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new ECDSA P-256 CA certificate signing itself: certificates and CRLs only (the lab's
    manufacturer, file-server and other harness CAs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@cache
def foreign_ca() -> ManufacturerCA:
    """One untrusted manufacturer CA per process (fault knob `foreign=True`)."""
    return ManufacturerCA.generate()


@cache
def _parsed(ca_key_pem: bytes, ca_cert_pem: bytes) -> ManufacturerCA:
    return ManufacturerCA(ca_key_pem, ca_cert_pem)


def issue_factory_certificate(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    mac: str,
    serial: str,
    model: str,
    *,
    expired: bool = False,
    foreign: bool = False,
    manufacturer: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> FactoryCredentials:
    """PROTOCOL §1: a factory certificate for one phone from the manufacturer CA (PEM key and
    certificate). `expired`/`foreign` are the fault knobs of the module docstring."""
    ca = foreign_ca() if foreign else _parsed(ca_key_pem, ca_cert_pem)
    return ca.issue(
        mac, serial, model, manufacturer=manufacturer, expired=expired, not_before=not_before, not_after=not_after
    )
