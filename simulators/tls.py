"""TLS for simulated phones: client contexts from PEM in memory, the phone's trust store, and
checks on the server certificate a phone makes beyond OpenSSL's.

Decisions:
- A phone trusts (research §7, §11.9): its built-in public roots (the harness passes the CAs
  it wants treated as public, e.g. the enrollment server's TLS CA); the root CA that came with
  the enrollment answer, where the firmware supports "Certificate with provisioning URL"; and
  the certificates `TRUSTCERTS` named, once fetched. "DES always uses the embedded public root
  CA certificates", so a store built from an enrollment always verifies.
- A provisioning server found without enrollment (network, manual entry) is not verified while
  `TRUSTCERTS` is empty: "If ENABLE_PUBLIC_CA_CERTS=0 and TRUSTCERTS is empty, the phone trusts
  any HTTPS file server for config and firmware download" [tpl S2:L4492-4510].
- The phone's own checks run inside the TLS handshake (`HandshakePolicy`, through the
  context's `sslobject_class`), so a refused server sees the connection end before any request:
  * wildcards (quirk `refuses-wildcard-certificates`, PRF-6): a verified server certificate with
    `*` in a SAN DNS name, or in the CN when there is no SAN, is refused
    (`wildcard-certificate-refused`);
  * clock skew (fault knob): OpenSSL checks validity at the machine's time; a phone whose clock is
    off checks the server certificate again at its own time (`server-certificate-not-yet-valid`,
    `server-certificate-expired`).
  The refusal is an `ssl.SSLCertVerificationError` carrying `phone_reason`.
- Mutual TLS (a factory or identity certificate) is TLS 1.2: there a server that refuses the
  client certificate does so inside the handshake, and the phone can report
  `tls-handshake-failed`. Under TLS 1.3 the refusal comes after the client's Finished, racing
  the first request, and reaches the phone as a bare connection reset. Without a client
  certificate TLS 1.3 is used where the server offers it.
- Context cost: contexts without a client certificate are shared between phones with the same
  trust (`ContextCache`), so a fleet builds a handful of them. A phone's own contexts (its
  factory or identity certificate) are built at boot and dropped after; phones build them with
  `simulators.mtls.OwnCertificate` (pyOpenSSL), about four times cheaper than `client_context`
  with a certificate on the system's OpenSSL 3.0, which stays here for tests and tools.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = [
    "ContextCache",
    "HandshakePolicy",
    "PeerCertificate",
    "TrustStore",
    "client_context",
    "count_certificates",
    "split_pem",
]

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def split_pem(data: bytes | str) -> list[bytes]:
    """The PEM certificates in `data`, each with its BEGIN/END lines."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    found: list[bytes] = []
    start = raw.find(_BEGIN)
    while start != -1:
        end = raw.find(_END, start)
        if end == -1:
            break
        found.append(raw[start : end + len(_END)] + b"\n")
        start = raw.find(_BEGIN, end)
    return found


def count_certificates(data: bytes) -> int:
    return data.count(_BEGIN)


@contextlib.contextmanager
def _pem_path(data: bytes) -> Iterator[str]:
    """A file path holding `data` for as long as the block runs: an anonymous memory file where
    the system has them (nothing touches a disk), else a private temporary file."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("enrollab-pem", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="enrollab-phone-") as tmp:
        path = os.path.join(tmp, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path


@dataclass(frozen=True, slots=True)
class HandshakePolicy:
    """The phone's checks on a verified server certificate (module docstring)."""

    refuse_wildcards: bool = False
    clock_skew: float = 0.0

    @property
    def active(self) -> bool:
        return self.refuse_wildcards or bool(self.clock_skew)

    def problem(self, peer: PeerCertificate | None) -> str | None:
        if peer is None:
            return None
        if self.refuse_wildcards and peer.wildcard:
            return "wildcard-certificate-refused"
        if self.clock_skew:
            return peer.validity_problem(time.time() + self.clock_skew)
        return None


class _PhoneSSLObject(ssl.SSLObject):
    """Runs the context's `HandshakePolicy` once the handshake is done."""

    def do_handshake(self) -> None:
        super().do_handshake()
        policy = getattr(self.context, "phone_policy", None)
        if policy is None:
            return
        peer = PeerCertificate.from_ssl_object(self)
        problem = policy.problem(peer)
        if problem is not None:
            error = ssl.SSLCertVerificationError(1, f"{problem} ({peer.names if peer else ''})")
            error.phone_reason = problem  # type: ignore[attr-defined]
            error.verify_message = problem
            raise error


def client_context(
    roots: Sequence[bytes] | None,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    policy: HandshakePolicy | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context. `roots` None: no verification at all (module docstring);
    otherwise exactly these roots (an empty list trusts nobody). `cert_pem`/`key_pem`: the
    client certificate to present (then TLS 1.2 only, module docstring); `policy`: the phone's
    own checks (verifying contexts only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_pem is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if roots is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        pems = b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in roots)
        if pems.strip():
            context.load_verify_locations(cadata=pems.decode("ascii"))
    if cert_pem is not None:
        chain = cert_pem if cert_pem.endswith(b"\n") else cert_pem + b"\n"
        with _pem_path(chain + (key_pem or b"")) as path:
            context.load_cert_chain(path)
    if roots is not None and policy is not None and policy.active:
        context.sslobject_class = _PhoneSSLObject
        context.phone_policy = policy  # type: ignore[attr-defined]
    return context


class ContextCache:
    """Shared client contexts without a client certificate, keyed by their trust (LRU)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._contexts: OrderedDict[tuple[Any, ...], ssl.SSLContext] = OrderedDict()

    def get(self, roots: Sequence[bytes] | None, policy: HandshakePolicy | None = None) -> ssl.SSLContext:
        key = (None if roots is None else tuple(roots), policy if policy is not None and policy.active else None)
        context = self._contexts.get(key)
        if context is None:
            context = client_context(roots, policy=policy)
            self._contexts[key] = context
            if len(self._contexts) > self.size:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
        return context


class TrustStore:
    """The CA certificates a phone trusts for provisioning servers, each with where it came from.
    `verify` False: trust any server (module docstring)."""

    __slots__ = ("_pems", "sources", "verify")

    def __init__(self, public_roots: Sequence[bytes] = (), *, verify: bool = True) -> None:
        self._pems: list[bytes] = []
        self.sources: list[str] = []
        self.verify = verify
        for pem in public_roots:
            self.add(pem, "public-root")

    def add(self, pem: bytes | str, source: str) -> int:
        """Add each certificate of `pem`; answers how many were new."""
        added = 0
        for cert in split_pem(pem):
            if cert not in self._pems:
                self._pems.append(cert)
                self.sources.append(source)
                added += 1
        return added

    @property
    def pems(self) -> tuple[bytes, ...]:
        return tuple(self._pems)

    def count(self, source: str) -> int:
        return sum(1 for s in self.sources if s == source)

    def roots(self) -> tuple[bytes, ...] | None:
        """What `client_context` takes: None when not verifying."""
        return self.pems if self.verify else None


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What a phone looks at on the server certificate after the handshake."""

    dns_names: tuple[str, ...]
    common_name: str | None
    not_before: float
    not_after: float

    @property
    def names(self) -> str:
        """The names it is for, as a phone reports them: its DNS SANs, else its CN."""
        return ", ".join(self.dns_names or (self.common_name or "",))

    @property
    def wildcard(self) -> bool:
        names = self.dns_names or ((self.common_name,) if self.common_name else ())
        return any("*" in name for name in names)

    @classmethod
    def from_ssl_object(cls, ssl_object: Any) -> PeerCertificate | None:
        """From an `ssl.SSLObject` (the verified dict form, or the DER when not verified)."""
        if ssl_object is None:
            return None
        info = ssl_object.getpeercert()
        if info:
            dns = tuple(value for kind, value in info.get("subjectAltName", ()) if kind == "DNS")
            cn = next((value for rdn in info.get("subject", ()) for key, value in rdn if key == "commonName"), None)
            return cls(
                dns,
                cn,
                float(ssl.cert_time_to_seconds(info["notBefore"])),
                float(ssl.cert_time_to_seconds(info["notAfter"])),
            )
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        return cls.from_certificate(x509.load_der_x509_certificate(der))

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> PeerCertificate:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            dns = ()
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cls(
            dns,
            str(cns[0].value) if cns else None,
            cert.not_valid_before_utc.timestamp(),
            cert.not_valid_after_utc.timestamp(),
        )

    def validity_problem(self, at: float) -> str | None:
        """`server-certificate-not-yet-valid` / `server-certificate-expired` at time `at`, or None."""
        if at < self.not_before:
            return "server-certificate-not-yet-valid"
        if at > self.not_after:
            return "server-certificate-expired"
        return None
