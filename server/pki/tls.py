"""`ssl.SSLContext` builders for the listeners and for clients, and the peer's identity.

- `device_server_context(pki)`: the device listener (PROTOCOL §2): TLS 1.2+, a client certificate
  is REQUIRED and must chain to the manufacturer bundle and not be on its issuer's CRL
  (`VERIFY_CRL_CHECK_LEAF`); a missing, expired, foreign or revoked certificate ends the
  handshake. Session tickets are off so a revoked device cannot resume a TLS 1.3 session.
- `reload_device_context(context, pki)`: after a revocation (or a new trusted manufacturer),
  makes the *running* listener's context verify with fresh trust: it swaps each new
  connection to a freshly built context from the SNI callback, which OpenSSL calls for every
  ClientHello, with or without a server name. No restart, no dropped connections.
- `admin_server_context(pki)`: server certificate only (HTTPS admin API).
- `login_server_context(pki, login_cas, public_cas)`: the HTTPS admin API with USR-3 certificate
  login: a client certificate is asked for (optional) and verified against every account's
  client root CA (and the system's public CAs when `public_cas`); `add_login_ca` trusts one
  more on the running listener. Which account's CA may log in whom is decided by
  `server.domain.login_certificates` from `peer_chain`. Tickets are off so every connection's
  chain is the one verified in its own handshake.
- `client_context(ca_pem, cert, key)`: for tests and simulators.
"""

from __future__ import annotations

import _ssl
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.x509.oid import NameOID

from server.pki.authority import name_attribute
from server.pki.keys import thumbprint
from server.pki.store import Pki


class PeerIdentity(NamedTuple):
    """Who is on the other end: factory certificate CN (the MAC), serialNumber, SHA-256 thumbprint."""

    cn: str | None
    serial_number: str | None
    thumbprint: str


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert_path, pki.server_key_path)
    return context


def admin_server_context(pki: Pki) -> ssl.SSLContext:
    """TLS 1.2+ with the server certificate; no client certificate asked."""
    return _server_context(pki)


def login_server_context(pki: Pki, login_cas: list[str], public_cas: bool = False) -> ssl.SSLContext:
    """The admin listener with certificate login (module docstring). Without any trust anchor no
    client certificate is asked for (a browser would prompt for nothing)."""
    context = _server_context(pki)
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    if public_cas:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_OPTIONAL
    for pem in login_cas:
        add_login_ca(context, pem)
    return context


def add_login_ca(context: ssl.SSLContext, pem: str) -> None:
    """Trust one more client root CA on a (running) login listener: new handshakes see it.
    A CA taken away stays trusted by the TLS layer until a restart; it logs no one in, since
    the login rule checks the account's current CA."""
    context.load_verify_locations(cadata=pem)
    context.verify_mode = ssl.CERT_OPTIONAL


def peer_chain(source: Any) -> list[bytes]:
    """The peer's verified certificate chain (DER, leaf first, root last) from an `SSLObject` or
    a transport; [] without TLS, without a client certificate, or on a resumed session."""
    ssl_object = source.get_extra_info("ssl_object") if hasattr(source, "get_extra_info") else source
    if ssl_object is None:
        return []
    # Public from Python 3.13; 3.11 and 3.12 have it on the underlying _ssl object.
    getter = getattr(ssl_object, "get_verified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_verified_chain", None
    )
    if getter is None or ssl_object.getpeercert(binary_form=True) is None:
        return []
    chain = getter() or []
    return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in chain]


def _load_pem_file(context: ssl.SSLContext, pem: bytes) -> None:
    # CRLs can only enter an SSLContext through a file (`cadata` takes certificates only).
    with tempfile.TemporaryDirectory(prefix="enrollab-trust-") as tmp:
        path = Path(tmp) / "trust.pem"
        path.write_bytes(pem)
        context.load_verify_locations(cafile=path)


def _device_context(pki: Pki) -> ssl.SSLContext:
    context = _server_context(pki)
    context.verify_mode = ssl.CERT_REQUIRED
    _load_pem_file(context, pki.device_trust_pem())
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    return context


def device_server_context(pki: Pki) -> ssl.SSLContext:
    """The device listener's context: mutual TLS against the manufacturer bundle and its CRLs."""
    return _device_context(pki)


def reload_device_context(context: ssl.SSLContext, pki: Pki) -> ssl.SSLContext:
    """Apply the current CRLs and trusted manufacturers to a listener already serving `context`.

    Re-reads DATA/pki (a revocation by the CLI in another process counts), builds a fresh
    context and has `context` hand every new handshake over to it. Answers the fresh context.
    Call it after `Pki.revoke_factory`, and once a day or so (it also re-signs a CRL that is
    about to expire).
    """
    pki.reload()
    fresh = _device_context(pki)

    def use_fresh(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        ssl_object.context = fresh

    context.sni_callback = use_fresh
    return fresh


def client_context(
    ca_pem: bytes | str | Path,
    cert: bytes | str | Path | None = None,
    key: bytes | str | Path | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting `ca_pem` (PEM data, or a file path), presenting `cert`/`key`.

    `cert` and `key` are file paths or PEM data (bytes, or text starting with `-----BEGIN`);
    `key` may be omitted when `cert` holds both. Host names are checked.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    ca_data = _pem_data(ca_pem)
    if ca_data is None:
        context.load_verify_locations(cafile=ca_pem)
    else:
        context.load_verify_locations(cadata=ca_data.decode("ascii"))
    if cert is not None:
        _load_cert_chain(context, cert, key)
    return context


def _pem_data(value: bytes | str | Path) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii")
    return None


def _pem_bytes(value: bytes | str | Path) -> bytes:
    data = _pem_data(value)
    return data if data is not None else Path(value).read_bytes()  # type: ignore[arg-type]


def _load_cert_chain(context: ssl.SSLContext, cert: bytes | str | Path, key: bytes | str | Path | None) -> None:
    cert_is_path = isinstance(cert, str | Path) and _pem_data(cert) is None
    if cert_is_path and (key is None or (isinstance(key, str | Path) and _pem_data(key) is None)):
        context.load_cert_chain(cert, key)
        return
    # PEM data in memory: through a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="enrollab-client-") as tmp:
        cert_path = Path(tmp) / "client.crt"
        cert_path.write_bytes(_pem_bytes(cert))
        key_path: Path | None = None
        if key is not None:
            key_path = Path(tmp) / "client.key"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(_pem_bytes(key))
        context.load_cert_chain(cert_path, key_path)


def peer_certificate(source: Any) -> x509.Certificate | None:
    """The peer's certificate from an `ssl.SSLObject`/`SSLSocket`, or from an asyncio/aiohttp
    transport (`transport.get_extra_info("ssl_object")`); None without TLS or a peer certificate."""
    der = peer_certificate_der(source)
    return x509.load_der_x509_certificate(der) if der else None


def peer_certificate_der(source: Any) -> bytes | None:
    """The peer's certificate as DER; see `peer_certificate` for `source`."""
    ssl_object = source.get_extra_info("ssl_object") if hasattr(source, "get_extra_info") else source
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der or None


def peer_identity(source: Any) -> PeerIdentity | None:
    """(CN, serialNumber, thumbprint) of the peer certificate; see `peer_certificate` for `source`."""
    cert = peer_certificate(source)
    if cert is None:
        return None
    return PeerIdentity(
        name_attribute(cert.subject, NameOID.COMMON_NAME),
        name_attribute(cert.subject, NameOID.SERIAL_NUMBER),
        thumbprint(cert),
    )
