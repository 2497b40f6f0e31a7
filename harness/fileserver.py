"""A provisioning file server for tests and the lab: serves files over HTTPS and HTTP on
127.0.0.1 (aiohttp) and records every request, so a test can say what a phone fetched.

    async with FileServer({"J179/J100Supgrade.txt": b"GET 46xxsettings.txt\\n", ...},
                          cert_mode="private") as files:
        files.https_url  -> "https://files.enrollab.test:PORT/"   (resolve the name to 127.0.0.1)
        files.ca_pem     -> the CA that signed its certificate (a profile's root CA, or a
                            phone's "public" root)
        files.requests   -> [RequestRecord(method, path, client, time, scheme, status, user)]
        files.handshakes -> [Handshake(client, time, ok, reason)]: every TLS handshake, also
                            the refused ones that leave no request (`harness.tls_gate`)

Certificate modes (`cert_mode`), generated with `cryptography` at start:
- `private`: a lab CA ("enrollab Lab Private CA") signs a certificate for the host names and
  127.0.0.1 (the J100 guide wants both a DNS and an IP SAN for HTTPS provisioning, research §7).
- `public`: the same from a CA named like a public root ("Simulated Public Root CA G1",
  O=Simulated Public Trust Services): hand `ca_pem` to phones as a built-in public root.
- `wildcard`: the private CA signs `*.<domain of the first host name>` (and 127.0.0.1), no
  exact name: what PRF-6 warns about.
- `expired`: the private CA's certificate for the names, expired yesterday.

`issuer` = (CA key, CA certificate) signs the server certificate instead of a generated CA (the
mode's validity and names still apply): a bench's root its physical phones trust
(`[bench] server_ca`, `harness.physical.bench_spec`) stands in for the "public" root.

The names a certificate carries can be chosen besides its mode (PRF-6 and the device suite's
server-name tests): `cert_names` the DNS SANs (instead of the host names, or the mode's wildcard;
() for none), `cert_addresses` the IP SANs (instead of 127.0.0.1 and `host`; () for none); the CN is the
first DNS name, else the first address.

On a lab network: `host` is the lab address it listens on, `netns` the lab's namespace (its
sockets are made there), `ports` = (http, https) fixes the ports (80, 443: a server named by
an address only, as DHCP siaddr or an LLDP TLV name it, is reached on the default ports).

Knobs: `delay` seconds before each answer (a slow file server); `statuses` forces an answer
status per path (e.g. 500); `credentials` (user, password) demands HTTP basic authentication
(PRF-2 URLs may carry `user:password@`). Files come from a dict (mutable while serving, via
`files`) or a directory. Paths are case-sensitive; `..` never leaves the directory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import mimetypes
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.listen import server_context, start_sites
from harness.tls_gate import Handshake
from simulators.factory import self_signed_ca

__all__ = ["CERT_MODES", "CertMode", "FileServer", "Issuer", "RequestRecord", "ServerCertificates", "make_certificates"]

CertMode = Literal["private", "public", "wildcard", "expired"]
Issuer = tuple[Any, x509.Certificate]  # (a CA's private key, its certificate)
CERT_MODES: tuple[CertMode, ...] = ("private", "public", "wildcard", "expired")
DEFAULT_HOSTNAMES = ("files.enrollab.test",)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it. `path` is without the leading `/`, percent-decoded."""

    method: str
    path: str
    client: str | None
    time: float
    scheme: str
    status: int
    user: str | None = None


@dataclass(frozen=True, slots=True)
class ServerCertificates:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def _san(self) -> x509.SubjectAlternativeName:
        cert = x509.load_pem_x509_certificate(self.cert_pem)
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    def dns_names(self) -> list[str]:
        """The server certificate's DNS SANs."""
        return list(self._san().get_values_for_type(x509.DNSName))

    def ip_names(self) -> list[str]:
        """The server certificate's IP-address SANs, as text."""
        return [str(a) for a in self._san().get_values_for_type(x509.IPAddress)]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def _ca(common_name: str, organization: str, now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return self_signed_ca(common_name, organization, now - timedelta(days=30), days=3680)


def make_certificates(
    mode: CertMode,
    hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES,
    addresses: tuple[str, ...] = ("127.0.0.1",),
    *,
    dns_names: tuple[str, ...] | None = None,
    issuer: Issuer | None = None,
) -> ServerCertificates:
    """A CA and a server certificate for `mode` (module docstring), with IP SANs `addresses`;
    `dns_names` replaces the DNS SANs the mode gives (`hostnames`, or its wildcard); `issuer`
    (key, certificate) signs instead of a generated CA."""
    if mode not in CERT_MODES:
        raise ValueError(f"cert_mode is one of {', '.join(CERT_MODES)}, not {mode!r}")
    now = datetime.now(UTC)
    ca_key: Any
    if issuer is not None:
        ca_key, ca_cert = issuer
    elif mode == "public":
        ca_key, ca_cert = _ca("Simulated Public Root CA G1", "Simulated Public Trust Services", now)
    else:
        ca_key, ca_cert = _ca("enrollab Lab Private CA", "enrollab lab", now)
    names = list(hostnames)
    if mode == "wildcard":
        domain = names[0].split(".", 1)[1] if "." in names[0] else names[0]
        names = [f"*.{domain}"]
    if dns_names is not None:
        names = list(dns_names)
    start, end = now - timedelta(minutes=5), now + timedelta(days=397)
    if mode == "expired":
        start, end = now - timedelta(days=30), now - timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    san.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses))
    if not san:
        raise ValueError("a server certificate needs a DNS or an IP-address name")
    common_name = names[0] if names else addresses[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServerCertificates(
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        _key_pem(key),
    )


class FileServer:
    """The file server (module docstring)."""

    def __init__(
        self,
        files: Mapping[str, bytes] | Path | str | None = None,
        *,
        cert_mode: CertMode = "private",
        hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES,
        host: str = "127.0.0.1",
        delay: float = 0.0,
        statuses: Mapping[str, int] | None = None,
        credentials: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        netns: str | None = None,
        ports: tuple[int, int] | None = None,
        cert_names: tuple[str, ...] | None = None,
        cert_addresses: tuple[str, ...] | None = None,
        issuer: Issuer | None = None,
    ) -> None:
        self.root: Path | None = None
        self.files: dict[str, bytes] = {}
        if isinstance(files, Path | str):
            self.root = Path(files).resolve()
        elif files is not None:
            self.files = {name.lstrip("/"): data for name, data in files.items()}
        self.cert_mode = cert_mode
        self.hostnames = hostnames
        self.host = host
        self.delay = delay
        self.statuses = dict(statuses or {})
        self.credentials = credentials
        self.clock = clock
        self.netns = netns
        self.fixed_ports = ports
        addresses = ("127.0.0.1", host) if cert_addresses is None else cert_addresses
        self.certificates = make_certificates(cert_mode, hostnames, addresses, dns_names=cert_names,
                                              issuer=issuer)
        self.requests: list[RequestRecord] = []
        self.handshakes: list[Handshake] = []
        self.http_port = 0
        self.https_port = 0
        self._runner: web.AppRunner | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def ca_pem(self) -> bytes:
        return self.certificates.ca_pem

    def url(self, scheme: str = "https", host: str | None = None, path: str = "") -> str:
        port = self.https_port if scheme == "https" else self.http_port
        return f"{scheme}://{host or self.hostnames[0]}:{port}/{path.lstrip('/')}"

    @property
    def https_url(self) -> str:
        return self.url("https")

    @property
    def http_url(self) -> str:
        return self.url("http")

    def paths(self, scheme: str | None = None, *, status: int | None = None) -> list[str]:
        """The paths requested, in order (optionally only over one scheme, or with one status)."""
        return [
            r.path
            for r in self.requests
            if (scheme is None or r.scheme == scheme) and (status is None or r.status == status)
        ]

    # -- serving ---------------------------------------------------------------------------------

    async def start(self) -> FileServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner, (self.http_port, self.https_port) = await start_sites(
            app, self.host, [None, server_context(self.certificates.cert_pem, self.certificates.key_pem)],
            netns=self.netns, ports=self.fixed_ports, on_handshake=self.handshakes.append,
        )
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FileServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _lookup(self, path: str) -> bytes | None:
        if self.root is None:
            return self.files.get(path)
        candidate = (self.root / path).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate.read_bytes() if candidate.is_file() else None

    def _user(self, request: web.Request) -> tuple[str | None, bool]:
        """(the basic-auth user, whether the request may pass)."""
        header = request.headers.get("Authorization", "")
        user = None
        password = None
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        if self.credentials is None:
            return user, True
        return user, (user, password) == self.credentials

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.match_info["tail"])
        user, allowed = self._user(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.get(path)
        data: bytes | None = None
        if not allowed:
            status = 401
        elif status is None:
            data = self._lookup(path)
            status = 200 if data is not None else 404
        self.requests.append(RequestRecord(request.method, path, request.remote, self.clock(), request.scheme,
                                           status, user))
        if status != 200 or data is None:
            headers = {"WWW-Authenticate": 'Basic realm="provisioning"'} if status == 401 else None
            return web.Response(status=status, text=f"{status}\n", headers=headers)
        content_type, _ = mimetypes.guess_type(path, strict=False)
        return web.Response(body=data, content_type=content_type or "application/octet-stream")


