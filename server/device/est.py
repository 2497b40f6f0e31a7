"""EST (RFC 7030) on the device listener: identity certificates from the device CA (ENR-8).

`GET /.well-known/est/cacerts` and `POST /.well-known/est/simpleenroll`, both over the device
listener's mutual TLS, so `curl` and `openssl` can enroll by hand (PROTOCOL §2). Bodies and
CSR checks are `server.pki.est`'s; this module decides who may ask.

Decisions:
- `cacerts` answers every device that passed the handshake (RFC 7030 §4.1.1: no further
  authorisation is needed to learn the CA).
- `simpleenroll` issues only to a device identified by its factory certificate that is
  enrolled (approved, claimed, associated with a site, activated, accounts enabled), whose
  site's provisioning entry asks for identity certificates (PRF-1) and whose model at the
  firmware it last reported at enrollment supports "Avaya issued certificates" (Appendix A,
  ENR-2/ENR-4: the redirect offered EST on the same conditions).
  Refusals: 404 `unknown-device`, 403 `not-enrolled`, `disabled-account`, `certificate-denied`
  (the deny-list), `manufacturer-not-allowed` (an account's allow-list; both as at enrollment,
  `server.device.admitted`), `no-profile`, `identity-certificates-off`,
  `identity-certificates-not-supported`; a body that is not a
  PKCS#10 request 400 `est-bad-csr`, a CSR whose subject is not `CN=<the device's MAC>` 403
  `est-subject-mismatch`, a weak key 422 `est-weak-key`; a content type other than
  `application/pkcs10` 415 `unsupported-media-type`.
- Every `simpleenroll` is audited (process ENROLLMENT, action `est-simpleenroll`), issued or
  refused, under the device owner's account when the device is known.
- Issue 16: for a known device the same transaction records the timeline event
  (`identity_issued` with the certificate's serial and expiry, or `identity_refused` with the
  reason) and, when issued, the row's `identity_issued_at` (`server.store.timeline`).
"""

from __future__ import annotations

from aiohttp import web

from fixtures.features import FeatureMatrix
from server.device.admitted import admitted_device
from server.device.request import client_host, device_ctx, domain_error_response, error_response, peer_of
from server.domain.enrollment.features import IDENTITY_CERTIFICATES
from server.domain.errors import DomainError
from server.pki import est
from server.store.audit import write_audit
from server.store.enrollment import EnrolledDevice, device_of_certificate
from server.store.timeline import identity_event

ROOT = "/.well-known/est"
MAX_CSR_BYTES = 64 * 1024
_BASE64 = {"Content-Transfer-Encoding": "base64"}


async def cacerts(request: web.Request) -> web.Response:
    """RFC 7030 §4.1: the device CA as base64 PKCS#7 certs-only."""
    pki = device_ctx(request).pki
    if pki is None:
        return error_response("no-pki", "The server has no device CA.", 404)
    return web.Response(body=est.cacerts_pkcs7(pki), headers={"Content-Type": est.CONTENT_TYPE_CACERTS, **_BASE64})


def check_identity_allowed(found: EnrolledDevice) -> DomainError | None:
    """ENR-8, PRF-1, Appendix A: does this enrolled device get an identity certificate?"""
    device, entry = found.device, found.entry
    if entry is None:
        return DomainError("no-profile", f"The device's site {found.site.id} has no profile (PRF-4).", 403)
    if not entry.identity_certificates:
        return DomainError(
            "identity-certificates-off",
            f"The provisioning entry of site {found.site.id} does not ask for identity certificates (PRF-1).",
            403,
        )
    matrix = FeatureMatrix.load()
    firmware = device.firmware
    try:
        supported = firmware is not None and matrix.supports(device.model, firmware, IDENTITY_CERTIFICATES)
        why = matrix.explain(device.model, firmware, IDENTITY_CERTIFICATES) if firmware else ""
    except (KeyError, ValueError):
        supported, why = False, f"{device.model} is not in the feature matrix"
    if not supported:
        detail = why or "the device has not reported its firmware in an enrollment yet"
        return DomainError(
            "identity-certificates-not-supported",
            f"{device.model} {firmware or '(firmware unknown)'} cannot use identity certificates: {detail} (ENR-4).",
            403,
        )
    return None


async def simpleenroll(request: web.Request) -> web.Response:
    """RFC 7030 §4.2: issue an identity certificate for the device's CSR (ENR-8)."""
    ctx, peer = device_ctx(request), peer_of(request)
    if request.content_type != est.CONTENT_TYPE_CSR:
        return error_response(
            "unsupported-media-type",
            f"simpleenroll takes Content-Type {est.CONTENT_TYPE_CSR} (RFC 7030), not {request.content_type!r}.",
            415,
        )
    if request.content_length is not None and request.content_length > MAX_CSR_BYTES:
        return error_response("body-too-large", f"A CSR is at most {MAX_CSR_BYTES} bytes.", 413)
    body = await request.read()
    pki = ctx.pki
    async with ctx.store.transaction() as session:
        found = await admitted_device(session, peer)
        refusal = found if isinstance(found, DomainError) else check_identity_allowed(found)
        issued: bytes | None = None
        if refusal is None and isinstance(found, EnrolledDevice):
            if pki is None:
                refusal = DomainError("no-pki", "The server has no device CA.", 503)
            else:
                try:
                    issued = est.issue_identity(pki, body, mac=found.device.mac)
                except DomainError as err:
                    refusal = err
        known = found.device if isinstance(found, EnrolledDevice) else None
        if known is None:
            known = await device_of_certificate(session, peer.cn, peer.thumbprint)
        what = "identity certificate issued" if refusal is None else f"{refusal.error}: {refusal.detail}"
        if known is not None:  # issue 16: the device's timeline (serial, expiry), same transaction
            identity_event(session, known, ctx.clock(), issued=issued if refusal is None else None,
                           refusal=None if refusal is None else (refusal.error, refusal.detail),
                           client_host=client_host(request))
        await write_audit(
            session,
            ctx,
            None,
            process="ENROLLMENT",
            action="est-simpleenroll",
            status="SUCCESS" if refusal is None else "FAIL",
            message=f"{peer.cn or '(no CN)'} [{peer.subject}] {what} (ENR-8)",
            client_host=client_host(request),
            account_id=known.owner_id if known is not None else None,
        )
    if refusal is not None or issued is None:
        assert refusal is not None
        return domain_error_response(refusal)
    return web.Response(body=issued, headers={"Content-Type": est.CONTENT_TYPE_PKCS7, **_BASE64})
