"""A certificate authority: its key and self-signed certificate, issuing, revocation and CRL.

Pure objects: nothing here touches the disk (`server.pki.store` persists them). Conventions for
every certificate the project issues:
- serial numbers from `x509.random_serial_number()`; SHA-256 signatures;
- validity starts 5 minutes in the past (clock skew between a simulator and the server) and
  never runs past the issuing CA's own `not_valid_after` unless a test asks for it explicitly;
- CA: basicConstraints CA:TRUE pathlen:0 (critical), keyUsage keyCertSign+cRLSign (critical),
  subjectKeyIdentifier; leaf: basicConstraints CA:FALSE, keyUsage digitalSignature
  (+keyEncipherment for RSA), extendedKeyUsage, subject/authority key identifiers, SAN if given.
- CRL: version 2 with cRLNumber and authorityKeyIdentifier, valid for a year and re-signed when
  less than 30 days remain (`refresh_crl`), so a long-running server never holds an expired CRL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from server.pki.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey, describe_key, generate_key, thumbprint

CLOCK_SKEW = timedelta(minutes=5)
CA_DAYS = 3650
CRL_DAYS = 365
CRL_REFRESH_BEFORE = timedelta(days=30)


def utcnow() -> datetime:
    return datetime.now(UTC)


def name(
    common_name: str,
    organization: str | None = None,
    *,
    organizational_unit: str | None = None,
    serial_number: str | None = None,
) -> x509.Name:
    """An x509 Name, most general part first (O, OU, serialNumber, CN), as OpenSSL prints it."""
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if organizational_unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, organizational_unit))
    if serial_number:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def name_attribute(subject: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The first value of `oid` in `subject` as text, or None."""
    values = subject.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def subject_text(subject: x509.Name) -> str:
    """RFC 4514 text with `serialNumber` spelled out (cryptography prints its OID otherwise)."""
    return subject.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})


@dataclass
class CertificateAuthority:
    """A CA in memory. `crl` is the current CRL (None until the first `new_crl`/`revoke`)."""

    key: PrivateKey
    certificate: x509.Certificate
    crl: x509.CertificateRevocationList | None = None

    @classmethod
    def create(
        cls,
        common_name: str,
        *,
        organization: str | None = "enrollab",
        key_type: KeyType = DEFAULT_KEY_TYPE,
        days: int = CA_DAYS,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """A new self-signed root CA (pathlen 0: it signs leaves only)."""
        now = now or utcnow()
        key = generate_key(key_type)
        subject = name(common_name, organization)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    # --- facts ------------------------------------------------------------------------------

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @property
    def key_type(self) -> str:
        return describe_key(self.key)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)

    @property
    def organization(self) -> str | None:
        return name_attribute(self.subject, NameOID.ORGANIZATION_NAME)

    def issued(self, cert: x509.Certificate) -> bool:
        """True when this CA's key signed `cert` (issuer name and signature both match)."""
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    # --- issuing ----------------------------------------------------------------------------

    def issue(
        self,
        *,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        extended_key_usage: Sequence[x509.ObjectIdentifier],
        san: Sequence[x509.GeneralName] = (),
        days: int = 365,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """A leaf certificate for `public_key`.

        `not_before`/`not_after` override the default window (now - 5 min … now + `days`, capped
        at the CA's expiry); tests use them to make expired or not-yet-valid certificates.
        """
        now = now or utcnow()
        start = not_before or now - CLOCK_SKEW
        end = not_after or min(now + timedelta(days=days), self.certificate.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=len(subject) == 0)
        return builder.sign(self.key, hashes.SHA256())

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    # --- revocation -------------------------------------------------------------------------

    def revoked_serials(self) -> set[int]:
        return {entry.serial_number for entry in self.crl} if self.crl is not None else set()

    def is_revoked(self, cert: x509.Certificate) -> bool:
        """True when `cert` was issued by this CA and its serial number is on the CRL. The serial
        is looked up first: a certificate's issuer name costs tens of µs to build, every request."""
        if self.crl is None or self.crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None:
            return False
        return cert.issuer == self.subject

    def new_crl(
        self, revoked: Iterable[x509.RevokedCertificate] = (), *, now: datetime | None = None
    ) -> x509.CertificateRevocationList:
        """Sign a CRL listing `revoked`, numbered one above the current CRL; it becomes `self.crl`."""
        now = now or utcnow()
        number = 1
        if self.crl is not None:
            with contextlib.suppress(x509.ExtensionNotFound):
                number = self.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.subject)
            .last_update(now - CLOCK_SKEW)
            .next_update(now + timedelta(days=CRL_DAYS))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(entry)
        self.crl = builder.sign(self.key, hashes.SHA256())
        return self.crl

    def revoke(
        self,
        serial_numbers: Iterable[int],
        *,
        reason: x509.ReasonFlags | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Add `serial_numbers` to the CRL (re-signed once); answers the ones that were not on it yet."""
        now = now or utcnow()
        known = self.revoked_serials()
        fresh = [serial for serial in dict.fromkeys(serial_numbers) if serial not in known]
        if fresh or self.crl is None:
            entries: list[x509.RevokedCertificate] = list(self.crl) if self.crl is not None else []
            for serial in fresh:
                entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
                if reason is not None:
                    entry = entry.add_extension(x509.CRLReason(reason), critical=False)
                entries.append(entry.build())
            self.new_crl(entries, now=now)
        return fresh

    def crl_is_stale(self, now: datetime | None = None) -> bool:
        """No CRL, or it expires within 30 days, or it is not signed by this CA's key."""
        now = now or utcnow()
        if self.crl is None or not self.signed(self.crl):
            return True
        next_update = self.crl.next_update_utc
        return next_update is None or next_update - now < CRL_REFRESH_BEFORE

    def refresh_crl(self, now: datetime | None = None) -> bool:
        """Re-sign the CRL (same entries) when `crl_is_stale`; True when it did."""
        if not self.crl_is_stale(now):
            return False
        keep = list(self.crl) if self.crl is not None and self.signed(self.crl) else []
        self.new_crl(keep, now=now)
        return True

    def signed(self, crl: x509.CertificateRevocationList) -> bool:
        """True when `crl` names this CA as issuer and its signature verifies with this CA's key."""
        if crl.issuer != self.subject:
            return False
        public = self.key.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):  # pragma: no cover
            return False
        return crl.is_signature_valid(public)
