"""What a device handler reads off its request: the server context, the firmware images, the
device's factory certificate (mutual TLS, ENR-1); and the JSON error answer.

Decisions:
- The TLS handshake already refused a missing, expired, foreign or revoked certificate
  (`server.pki.tls.device_server_context`). A TLS 1.2 session resumed from before a revocation
  skips that check, so every request checks the CRLs again (`Pki.is_revoked`): 403
  `certificate-revoked`. A request without a peer certificate (none can arrive; defence in
  depth) is 401 `certificate-required`.
- Errors have the admin API's shape `{"error", "detail"}`; enrollment answers themselves have
  PROTOCOL §2's shape `{"result", ...}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from server.context import ServerContext
from server.device.firmware_images import FirmwareImages
from server.domain.errors import DomainError
from server.pki.authority import name_attribute, subject_text
from server.pki.keys import thumbprint
from server.pki.tls import peer_certificate_der

CTX = web.AppKey("device_ctx", ServerContext)
IMAGES = web.AppKey("firmware_images", FirmwareImages)


@dataclass(frozen=True)
class Peer:
    """The factory certificate the device presented: CN (its MAC), subject, SHA-256 thumbprint,
    and the label of the manufacturer CA that issued it (`Pki.manufacturer_of`)."""

    certificate: x509.Certificate
    cn: str | None
    subject: str
    thumbprint: str
    manufacturer: str | None = None

    @classmethod
    def of(cls, certificate: x509.Certificate, der: bytes | None = None, manufacturer: str | None = None) -> Peer:
        """`der`, when the caller has the certificate's DER, spares re-encoding it for the
        thumbprint (`Certificate.fingerprint` costs ten times hashing the DER)."""
        subject = certificate.subject  # built anew on every access: once is enough
        return cls(
            certificate,
            name_attribute(subject, NameOID.COMMON_NAME),
            subject_text(subject),
            thumbprint(der if der is not None else certificate),
            manufacturer,
        )


_PEER = web.RequestKey("device_peer", Peer)


def error_response(error: str, detail: str, status: int, **headers: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers or None)


def domain_error_response(err: DomainError) -> web.Response:
    return web.json_response(err.to_json(), status=err.status)


def device_ctx(request: web.Request) -> ServerContext:
    return request.app[CTX]


def firmware_images(request: web.Request) -> FirmwareImages:
    return request.app[IMAGES]


def peer_of(request: web.Request) -> Peer:
    """The authenticated peer (set by `peer_middleware`)."""
    peer: Peer = request[_PEER]
    return peer


def client_host(request: web.Request) -> str | None:
    return request.remote


@web.middleware
async def peer_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """ENR-1: every device request carries a factory certificate that is not revoked."""
    der = peer_certificate_der(request.transport) if request.transport is not None else None
    if der is None:
        return error_response("certificate-required", "The device listener needs a client certificate.", 401)
    cert = x509.load_der_x509_certificate(der)
    pki = device_ctx(request).pki
    if pki is not None and pki.is_revoked(cert):
        return error_response("certificate-revoked", "This factory certificate has been revoked.", 403)
    request[_PEER] = Peer.of(cert, der, pki.manufacturer_of(cert) if pki is not None else None)
    return await handler(request)
