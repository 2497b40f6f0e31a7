"""Factory certificates: what a (simulated) device is born with (PROTOCOL §1, ENR-1).

Subject `O=<manufacturer>, OU=<model>, serialNumber=<device serial>, CN=<MAC canonical>`; the
model in OU is an addition PROTOCOL §1 allows (peers read CN and serialNumber). clientAuth EKU,
no SAN, valid 20 years (a phone outlives any enrollment) but never past the manufacturer CA.
The thumbprint that import files carry is the SHA-256 of the DER, upper-case hex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.domain.errors import invalid
from server.domain.identity import normalize_mac, validate_serial
from server.pki.authority import CertificateAuthority, name, name_attribute
from server.pki.files import write_file, write_private
from server.pki.keys import KeyType, PrivateKey, certificate_pem, generate_key, private_key_pem, thumbprint

FACTORY_DAYS = 20 * 365
DEFAULT_MANUFACTURER = "enrollab Simulated Manufacturer"

# The model pattern of the device import schema (fixtures/schemas/device-import.schema.json).
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/+-]{0,31}")


def validate_model(model: object) -> str:
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        raise invalid(
            "invalid-model",
            "A model is 1-32 letters, digits, blanks or . _ / + - starting with a letter or digit (e.g. J179).",
            value=model,
        )
    return model


@dataclass(frozen=True)
class FactoryCertificate:
    """A device's factory certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)

    @property
    def mac(self) -> str:
        return name_attribute(self.certificate.subject, NameOID.COMMON_NAME) or ""

    @property
    def serial(self) -> str:
        return name_attribute(self.certificate.subject, NameOID.SERIAL_NUMBER) or ""

    @property
    def model(self) -> str:
        return name_attribute(self.certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""

    @property
    def cert_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    @property
    def key_pem(self) -> bytes:
        return private_key_pem(self.key)

    def write(self, prefix: Path | str) -> tuple[Path, Path]:
        """Write `PREFIX.key` (mode 0600) and `PREFIX.crt` (PEM); answer both paths."""
        prefix = Path(prefix)
        key_path = prefix.with_name(prefix.name + ".key")
        cert_path = prefix.with_name(prefix.name + ".crt")
        write_private(key_path, self.key_pem)
        write_file(cert_path, self.cert_pem)
        return key_path, cert_path


def issue_factory_certificate(
    ca: CertificateAuthority,
    *,
    mac: str,
    serial: str,
    model: str,
    manufacturer: str | None = None,
    key_type: KeyType | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    now: datetime | None = None,
) -> FactoryCertificate:
    """A new key pair and factory certificate from manufacturer CA `ca`.

    `mac` in any accepted form (stored canonical); `manufacturer` defaults to the CA's O;
    `key_type` to the CA's own (ECDSA P-256 or RSA-2048). `not_before`/`not_after` are for
    negative tests (an expired factory certificate).
    """
    canonical = normalize_mac(mac)
    serial = validate_serial(serial)
    model = validate_model(model)
    org = manufacturer or ca.organization or DEFAULT_MANUFACTURER
    kind: KeyType = key_type or ("rsa-2048" if ca.key_type.startswith("rsa") else "ecdsa-p256")
    key = generate_key(kind)
    cert = ca.issue(
        subject=name(canonical, org, organizational_unit=model, serial_number=serial),
        public_key=key.public_key(),
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=FACTORY_DAYS,
        not_before=not_before,
        not_after=not_after,
        now=now,
    )
    return FactoryCertificate(cert, key)
