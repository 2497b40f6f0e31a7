"""The PKI on disk: created on first start, loaded afterwards (idempotent), under DATA/pki/.

Layout (directories 0700, private keys 0600, everything PEM):

    DATA/pki/
      tls-ca.key, tls-ca.crt                 CA of the server's TLS certificate (`enrollab pki export-ca`)
      server.key, server.crt                 server TLS certificate: SAN localhost, 127.0.0.1, ::1 + host names
      device-ca.key, device-ca.crt           signs EST identity certificates (ENR-8)
      manufacturer-ca.key, manufacturer-ca.crt   issues factory certificates of simulated devices
      manufacturer-ca.crl                    its CRL (`enrollab pki revoke`), checked on the device listener
      manufacturer-issued.jsonl              one line per factory certificate issued (thumbprint, serials)
      trusted-manufacturers/NAME.pem         more manufacturer CAs the device listener trusts, each with
      trusted-manufacturers/NAME.crl         the CRL of the CA that issues its devices (PEM or DER)
      .lock                                  serialises first start and revocations between processes

Rules:
- A CA is created only when both its files are missing; half a CA (key without certificate,
  unreadable or mismatched files) is `pki-damaged` rather than silently replaced, because a new
  CA would orphan every certificate the old one issued. `key_type` applies to what is created;
  existing keys keep their type.
- The server certificate is a leaf and is re-issued whenever needed: missing or unreadable,
  its names differ from the configured ones, it expires within 30 days, or the TLS CA did not
  sign it.
- A trusted manufacturer CA is used only together with a valid CRL of its own (the device
  listener checks the CRL of every client certificate's issuer, and OpenSSL refuses a chain
  whose issuer has no CRL); a file without one is skipped and `Pki.warnings` says why.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from server.domain.errors import DomainError, invalid
from server.pki.authority import CertificateAuthority, name, utcnow
from server.pki.factory import DEFAULT_MANUFACTURER, FactoryCertificate, issue_factory_certificate
from server.pki.files import append_line, locked, make_private_dir, write_file, write_private
from server.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    certificate_pem,
    check_key_type,
    generate_key,
    load_private_key,
    normalize_thumbprint,
    private_key_pem,
    public_keys_match,
    thumbprint,
)

PKI_DIRNAME = "pki"
SERVER_DAYS = 397
SERVER_RENEW_BEFORE = timedelta(days=30)
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
LOCAL_MANUFACTURER = "local"  # the label of DATA/pki/manufacturer-ca (allow-lists name manufacturer CAs by label)
_TRUSTED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class PkiLayout:
    """Where each PKI file lives under a data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = root / ".lock"
        self.tls_ca_key = root / "tls-ca.key"
        self.tls_ca_cert = root / "tls-ca.crt"
        self.server_key = root / "server.key"
        self.server_cert = root / "server.crt"
        self.device_ca_key = root / "device-ca.key"
        self.device_ca_cert = root / "device-ca.crt"
        self.manufacturer_ca_key = root / "manufacturer-ca.key"
        self.manufacturer_ca_cert = root / "manufacturer-ca.crt"
        self.manufacturer_crl = root / "manufacturer-ca.crl"
        self.issued_index = root / "manufacturer-issued.jsonl"
        self.trusted_dir = root / "trusted-manufacturers"

    @classmethod
    def of(cls, data_dir: Path | str) -> PkiLayout:
        return cls(Path(data_dir) / PKI_DIRNAME)

    def __repr__(self) -> str:
        return f"PkiLayout({str(self.root)!r})"


@dataclass(frozen=True)
class TrustedManufacturer:
    """One `trusted-manufacturers/NAME.pem` file in use, with the CRLs found for it."""

    name: str
    path: Path
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]


@dataclass(frozen=True)
class IssuedFactory:
    """A line of `manufacturer-issued.jsonl`."""

    thumbprint: str
    cert_serial: int
    mac: str
    serial: str
    model: str
    ca: str  # thumbprint of the manufacturer CA that issued it

    @classmethod
    def from_json(cls, line: str) -> IssuedFactory:
        data = json.loads(line)
        return cls(
            data["thumbprint"], int(data["cert_serial"], 16), data["mac"], data["serial"], data["model"], data["ca"]
        )


@dataclass
class Pki:
    """The server's PKI as loaded from DATA/pki (see the module docstring)."""

    layout: PkiLayout
    tls_ca: CertificateAuthority
    device_ca: CertificateAuthority
    manufacturer_ca: CertificateAuthority
    server_certificate: x509.Certificate
    trusted: list[TrustedManufacturer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what ensure_pki created or renewed, for the log

    def __repr__(self) -> str:
        return f"Pki({str(self.layout.root)!r}, changes={self.changes}, warnings={self.warnings})"

    # --- files ------------------------------------------------------------------------------

    @property
    def server_cert_path(self) -> Path:
        return self.layout.server_cert

    @property
    def server_key_path(self) -> Path:
        return self.layout.server_key

    @property
    def tls_ca_path(self) -> Path:
        return self.layout.tls_ca_cert

    @property
    def manufacturer_bundle(self) -> list[Path]:
        """PEM files of every manufacturer CA the device listener trusts: ours first."""
        return [self.layout.manufacturer_ca_cert, *(t.path for t in self.trusted)]

    @property
    def server_names(self) -> list[str]:
        """The names in the server certificate's SAN (DNS names and IP addresses as text)."""
        return [_general_name_text(n) for n in _san(self.server_certificate)]

    def device_trust_pem(self) -> bytes:
        """Every trusted manufacturer CA certificate and its CRLs, concatenated PEM (for `tls`)."""
        parts = [certificate_pem(self.manufacturer_ca.certificate)]
        if self.manufacturer_ca.crl is not None:
            parts.append(self.manufacturer_ca.crl.public_bytes(serialization.Encoding.PEM))
        for trusted in self.trusted:
            parts.extend(certificate_pem(cert) for cert in trusted.certificates)
            parts.extend(crl.public_bytes(serialization.Encoding.PEM) for crl in trusted.crls)
        return b"".join(parts)

    # --- factory certificates ---------------------------------------------------------------

    def issue_factory(
        self,
        mac: str,
        serial: str,
        model: str,
        *,
        manufacturer: str | None = None,
        key_type: KeyType | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        record: bool = True,
    ) -> FactoryCertificate:
        """A factory certificate from our manufacturer CA (PROTOCOL §1), recorded for `revoke_factory`."""
        issued = issue_factory_certificate(
            self.manufacturer_ca,
            mac=mac,
            serial=serial,
            model=model,
            manufacturer=manufacturer,
            key_type=key_type,
            not_before=not_before,
            not_after=not_after,
        )
        if record:
            entry = {
                "thumbprint": issued.thumbprint,
                "cert_serial": format(issued.certificate.serial_number, "x"),
                "mac": issued.mac,
                "serial": issued.serial,
                "model": issued.model,
                "ca": self.manufacturer_ca.thumbprint,
                "not_after": issued.certificate.not_valid_after_utc.isoformat(),
            }
            append_line(self.layout.issued_index, json.dumps(entry, separators=(",", ":")))
        return issued

    def factory_records(self) -> list[IssuedFactory]:
        """Factory certificates our current manufacturer CA issued, oldest first."""
        try:
            lines = self.layout.issued_index.read_text().splitlines()
        except FileNotFoundError:
            return []
        mine = self.manufacturer_ca.thumbprint
        records = []
        for line in lines:
            try:
                record = IssuedFactory.from_json(line)
            except (ValueError, KeyError, TypeError):
                continue  # a torn or hand-edited line: not ours to fix
            if record.ca == mine:
                records.append(record)
        return records

    def revoke_factory(
        self,
        serial_or_thumbprint: str | x509.Certificate,
        *,
        by: Literal["any", "thumbprint", "serial"] = "any",
        reason: x509.ReasonFlags | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Put factory certificates on the manufacturer CA's CRL (persisted); answers their thumbprints.

        Takes a thumbprint (hex, `:` allowed), a device serial (every certificate issued for it),
        or the certificate itself; `by` restricts how a text is read. Revoking twice is harmless.
        A running device listener applies the new CRL after `server.pki.tls.reload_device_context`.
        Errors: `invalid-thumbprint`, `unknown-certificate` (404), `foreign-certificate`.
        """
        if isinstance(serial_or_thumbprint, x509.Certificate):
            cert = serial_or_thumbprint
            if not self.manufacturer_ca.issued(cert):
                raise invalid("foreign-certificate", "This certificate was not issued by the manufacturer CA.")
            targets = {thumbprint(cert): cert.serial_number}
        else:
            text = serial_or_thumbprint.strip()
            wanted = normalize_thumbprint(text) if by != "serial" else None
            if by == "thumbprint" and wanted is None:
                raise invalid("invalid-thumbprint", "A thumbprint is 64 hex digits (SHA-256 of the DER).", text)
            records = self.factory_records()
            found = [r for r in records if wanted is not None and r.thumbprint == wanted]
            if not found and by != "thumbprint":
                found = [r for r in records if r.serial == text]
            if not text or not found:
                raise DomainError(
                    "unknown-certificate",
                    "No factory certificate with this thumbprint or device serial was issued by the manufacturer CA.",
                    404,
                    text,
                )
            targets = {r.thumbprint: r.cert_serial for r in found}
        with locked(self.layout.lock):
            self._read_our_crl()
            if self.manufacturer_ca.revoke(targets.values(), reason=reason, now=now):
                _write_crl(self.layout.manufacturer_crl, self.manufacturer_ca)
        return list(targets)

    def _read_our_crl(self) -> None:
        """Adopt the CRL on disk (another process may have revoked) when it is our CA's."""
        on_disk = _read_crl(self.layout.manufacturer_crl)
        if on_disk is not None and self.manufacturer_ca.signed(on_disk):
            self.manufacturer_ca.crl = on_disk

    def is_revoked(self, cert: x509.Certificate) -> bool:
        """True when a CRL we hold (ours or a trusted manufacturer's) lists `cert`.

        The device listener already refuses such certificates in the handshake; this answers the
        same question for a TLS 1.2 session resumed from before a revocation.
        """
        if self.manufacturer_ca.is_revoked(cert):
            return True
        serial = cert.serial_number
        return any(
            crl.get_revoked_certificate_by_serial_number(serial) is not None and crl.issuer == cert.issuer
            for trusted in self.trusted
            for crl in trusted.crls
        )

    def manufacturer_of(self, cert: x509.Certificate) -> str | None:
        """The label of the manufacturer CA that issued `cert`: `LOCAL_MANUFACTURER` for ours, a
        `trusted-manufacturers/` file's name for the others; None when none of them did (the
        handshake has already checked the chain: this only names its issuer)."""
        issuer = cert.issuer
        if issuer == self.manufacturer_ca.certificate.subject:
            return LOCAL_MANUFACTURER
        for trusted in self.trusted:
            if any(ca.subject == issuer for ca in trusted.certificates):
                return trusted.name
        return None

    def manufacturer_labels(self) -> list[str]:
        """Every manufacturer CA label the device listener trusts, ours first."""
        return [LOCAL_MANUFACTURER, *(t.name for t in self.trusted)]

    # --- trust ------------------------------------------------------------------------------

    def trust_manufacturer(self, label: str, ca_pem: bytes, crl: bytes) -> Path:
        """Add a manufacturer CA (PEM, one or more certificates) and its CRL (PEM or DER) as
        `trusted-manufacturers/LABEL.pem` / `.crl`; answers the PEM path. Refused with
        `invalid-manufacturer-ca` when the files would not be used."""
        if not _TRUSTED_NAME.fullmatch(label):
            raise invalid("invalid-manufacturer-ca", "The label is letters, digits, '.', '_' or '-'.", value=label)
        loaded, problem = _parse_trusted(label, ca_pem, crl, self.layout.trusted_dir / f"{label}.pem")
        if loaded is None:
            raise invalid("invalid-manufacturer-ca", problem or "unusable manufacturer CA", value=label)
        make_private_dir(self.layout.trusted_dir)
        write_file(self.layout.trusted_dir / f"{label}.crl", crl)
        path = write_file(self.layout.trusted_dir / f"{label}.pem", ca_pem)
        self.reload()
        return path

    def reload(self, now: datetime | None = None) -> None:
        """Re-read what other processes may have changed: our CRL (re-signed when it is about to
        expire) and the trusted-manufacturers directory."""
        with locked(self.layout.lock):
            self._read_our_crl()
            if self.manufacturer_ca.refresh_crl(now):
                _write_crl(self.layout.manufacturer_crl, self.manufacturer_ca)
        self.trusted, trust_warnings = _load_trusted(self.layout.trusted_dir, now or utcnow())
        self.warnings = [w for w in self.warnings if not w.startswith("trusted-manufacturers/")] + trust_warnings


def ensure_pki(
    data_dir: Path | str,
    *,
    hostnames: Sequence[str] | None = None,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    now: datetime | None = None,
) -> Pki:
    """Create what is missing under DATA/pki, load the rest, renew the server certificate if needed.

    `hostnames`: names the server certificate carries besides localhost, 127.0.0.1 and ::1 (DNS
    names or IP addresses). None keeps the current certificate's names (so the CLI does not undo
    the server's configuration); a sequence, even empty, is the wanted set. Idempotent: a second
    call with the same arguments changes no file.
    """
    key_type = check_key_type(key_type)
    now = now or utcnow()
    layout = PkiLayout.of(data_dir)
    try:
        make_private_dir(Path(data_dir))
        make_private_dir(layout.root)
        make_private_dir(layout.trusted_dir)
    except OSError as exc:
        raise DomainError(
            "data-dir", f"cannot create the PKI directory {layout.root}: {exc.strerror}", 400, str(layout.root)
        ) from None
    if not os.access(layout.root, os.W_OK):
        raise DomainError("data-dir", f"the PKI directory {layout.root} is not writable", 400, str(layout.root))

    changes: list[str] = []
    warnings: list[str] = []
    with locked(layout.lock):
        tls_ca = _ca(layout.tls_ca_key, layout.tls_ca_cert, "enrollab TLS CA", "enrollab", key_type, now, changes)
        device_ca = _ca(
            layout.device_ca_key, layout.device_ca_cert, "enrollab Device CA", "enrollab", key_type, now, changes
        )
        manufacturer_ca = _ca(
            layout.manufacturer_ca_key,
            layout.manufacturer_ca_cert,
            f"{DEFAULT_MANUFACTURER} CA",
            DEFAULT_MANUFACTURER,
            key_type,
            now,
            changes,
        )
        had_crl = layout.manufacturer_crl.exists()
        crl = _read_crl(layout.manufacturer_crl)
        if had_crl and crl is None:
            raise _damaged(layout.manufacturer_crl, "is not a readable CRL: restore it, or delete it to start empty")
        if crl is not None and not manufacturer_ca.signed(crl):
            raise _damaged(layout.manufacturer_crl, "is not the manufacturer CA's: restore it, or delete it")
        if not had_crl and "manufacturer-ca" not in changes:
            warnings.append("manufacturer-ca.crl was missing and was re-created empty: earlier revocations are lost")
        manufacturer_ca.crl = crl
        if manufacturer_ca.refresh_crl(now):
            _write_crl(layout.manufacturer_crl, manufacturer_ca)
            changes.append("manufacturer-crl")
        server_cert = _server_certificate(layout, tls_ca, hostnames, now, changes)
    for role, ca in (("tls-ca", tls_ca), ("device-ca", device_ca), ("manufacturer-ca", manufacturer_ca)):
        if ca.certificate.not_valid_after_utc - now < SERVER_RENEW_BEFORE:
            warnings.append(f"{role} expires on {ca.certificate.not_valid_after_utc:%Y-%m-%d}")
    trusted, trust_warnings = _load_trusted(layout.trusted_dir, now)
    return Pki(layout, tls_ca, device_ca, manufacturer_ca, server_cert, trusted, warnings + trust_warnings, changes)


# --- CAs ------------------------------------------------------------------------------------


def _damaged(path: Path, problem: str) -> DomainError:
    return DomainError("pki-damaged", f"{path} {problem}", 500, str(path))


def _ca(
    key_path: Path,
    cert_path: Path,
    common_name: str,
    organization: str,
    key_type: KeyType,
    now: datetime,
    changes: list[str],
) -> CertificateAuthority:
    has_key, has_cert = key_path.exists(), cert_path.exists()
    if not has_key and not has_cert:
        ca = CertificateAuthority.create(
            f"{common_name} {secrets.token_hex(4).upper()}", organization=organization, key_type=key_type, now=now
        )
        write_private(key_path, private_key_pem(ca.key))
        write_file(cert_path, certificate_pem(ca.certificate))
        changes.append(cert_path.stem)
        return ca
    if not (has_key and has_cert):
        missing = cert_path if has_key else key_path
        raise _damaged(
            missing,
            "is missing while its pair exists: restore it, or delete both to create a new CA "
            "(what the old one issued stops working)",
        )
    try:
        key = load_private_key(key_path.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (ValueError, TypeError, OSError) as exc:
        raise _damaged(cert_path, f"or its key cannot be read ({exc})") from None
    if not public_keys_match(key, cert):
        raise _damaged(cert_path, f"does not match the key in {key_path.name}")
    return CertificateAuthority(key, cert)


def _read_crl(path: Path) -> x509.CertificateRevocationList | None:
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_crl(path: Path, ca: CertificateAuthority) -> None:
    assert ca.crl is not None
    write_file(path, ca.crl.public_bytes(serialization.Encoding.PEM))


# --- server certificate ---------------------------------------------------------------------


def _san(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _general_name_text(general: x509.GeneralName) -> str:
    return str(general.value)


def server_names(hostnames: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries: localhost, 127.0.0.1, ::1, then `hostnames` (DNS names or IP addresses), deduplicated.

    A name that is neither is `invalid-hostname`.
    """
    result: list[x509.GeneralName] = []
    for raw in (*DEFAULT_SERVER_NAMES, *hostnames):
        text = raw.strip() if isinstance(raw, str) else ""
        entry: x509.GeneralName
        try:
            entry = x509.IPAddress(ipaddress.ip_address(text.strip("[]")))
        except ValueError:
            dns = _dns_name(text)
            if dns is None:
                raise invalid(
                    "invalid-hostname", "A host name is a DNS name or an IP address (e.g. enroll.lab.example).", raw
                ) from None
            entry = x509.DNSName(dns)
        if entry not in result:
            result.append(entry)
    return result


def _dns_name(text: str) -> str | None:
    try:
        ascii_name = text.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_name.split(".")
    if not ascii_name or len(ascii_name) > 253:
        return None
    if labels[0] == "*":  # a wildcard in the leftmost label only
        labels = labels[1:]
    if not labels or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_name


def _server_certificate(
    layout: PkiLayout, tls_ca: CertificateAuthority, hostnames: Sequence[str] | None, now: datetime, changes: list[str]
) -> x509.Certificate:
    current: x509.Certificate | None = None
    try:
        current = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
        key = load_private_key(layout.server_key.read_bytes())
        if not public_keys_match(key, current):
            current = None
    except (OSError, ValueError, TypeError):
        current = None
    if hostnames is None:
        wanted = _san(current) if current is not None else server_names(())
    else:
        wanted = server_names(hostnames)
    if (
        current is not None
        and tls_ca.issued(current)
        and set(_san(current)) == set(wanted)
        and current.not_valid_after_utc - now >= SERVER_RENEW_BEFORE
        and current.not_valid_before_utc <= now
    ):
        return current
    key = generate_key("rsa-2048" if isinstance(tls_ca.key, rsa.RSAPrivateKey) else "ecdsa-p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    first = next((str(n.value) for n in wanted if isinstance(n, x509.DNSName) and n.value != "localhost"), "localhost")
    cert = tls_ca.issue(
        subject=name(first, "enrollab"),
        public_key=key.public_key(),
        extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH],
        san=wanted,
        days=SERVER_DAYS,
        now=now,
    )
    write_private(layout.server_key, private_key_pem(key))
    write_file(layout.server_cert, certificate_pem(cert))
    changes.append("server" if current is None else "server-renewed")
    return cert


# --- trusted manufacturers ------------------------------------------------------------------


def _load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    if b"-----BEGIN X509 CRL-----" in data:
        blocks = re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", data, re.S)
        return [x509.load_pem_x509_crl(block) for block in blocks]
    return [x509.load_der_x509_crl(data)]


def _parse_trusted(
    label: str, ca_pem: bytes, crl_data: bytes | None, path: Path
) -> tuple[TrustedManufacturer | None, str | None]:
    where = f"trusted-manufacturers/{label}"
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return None, f"{where}.pem holds no PEM certificate: skipped"
    for cert in certs:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            return None, f"{where}.pem: {cert.subject.rfc4514_string()} is not a CA certificate: skipped"
    if crl_data is None:
        return None, f"{where}.pem has no {label}.crl next to it (the device listener checks CRLs): skipped"
    try:
        crls = _load_crls(crl_data)
    except ValueError:
        return None, f"{where}.crl is not a CRL (PEM or DER): skipped"
    valid = []
    for crl in crls:
        for cert in certs:
            public = cert.public_key()
            if (
                crl.issuer == cert.subject
                and isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
                and crl.is_signature_valid(public)
            ):
                valid.append(crl)
                break
    if not valid:
        return None, f"{where}.crl is not signed by a CA in {label}.pem: skipped"
    return TrustedManufacturer(label, path, tuple(certs), tuple(valid)), None


def _load_trusted(directory: Path, now: datetime) -> tuple[list[TrustedManufacturer], list[str]]:
    trusted: list[TrustedManufacturer] = []
    warnings: list[str] = []
    for pem in sorted(directory.glob("*.pem")):
        label = pem.stem
        crl_path = pem.with_suffix(".crl")
        try:
            crl_data = crl_path.read_bytes() if crl_path.exists() else None
            loaded, problem = _parse_trusted(label, pem.read_bytes(), crl_data, pem)
        except OSError as exc:
            loaded, problem = None, f"trusted-manufacturers/{pem.name} cannot be read ({exc.strerror}): skipped"
        if loaded is None:
            warnings.append(problem or f"trusted-manufacturers/{pem.name}: skipped")
            continue
        for crl in loaded.crls:
            next_update = crl.next_update_utc
            if next_update is not None and next_update < now:
                warnings.append(
                    f"trusted-manufacturers/{label}.crl expired on {next_update:%Y-%m-%d}: "
                    "devices of this manufacturer fail the handshake until it is replaced"
                )
        trusted.append(loaded)
    return trusted, warnings
