"""The enrolled device behind a request's factory certificate, for the routes beside the
enrollment answer (EST `simpleenroll`, DES files): `server.store.enrollment.enrolled_device` and
the two certificate policies the enrollment answer applies (issue 13).

Decisions:
- A certificate on the platform's deny-list is refused here too, 403 `certificate-denied` with
  the list's reason: a device enrolled before its certificate was denied must not get an
  identity certificate (ENR-8) or its site's files (ENR-6) with it. The bad-input tier found
  `simpleenroll` issuing to a denied certificate.
- The manufacturer-CA allow-lists of the device's owner and of its site's account apply as at
  enrollment (`admission.manufacturer_refusal`): 403 `manufacturer-not-allowed`.
- The ids are the enrollment answer's `reason`s, so a device and an operator read one refusal
  the same way on every route.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.device.request import Peer
from server.domain.enrollment.admission import manufacturer_refusal
from server.domain.errors import DomainError
from server.pki.keys import normalize_thumbprint
from server.store.enrollment import EnrolledDevice, enrolled_device
from server.store.models import Account, DeniedCertificate


async def admitted_device(session: AsyncSession, peer: Peer) -> EnrolledDevice | DomainError:
    """The enrolled device whose factory certificate `peer` presented, or why not (404
    `unknown-device`, 403 `not-enrolled`, `disabled-account`, `certificate-denied`,
    `manufacturer-not-allowed`)."""
    found = await enrolled_device(session, peer.cn, peer.thumbprint)
    if isinstance(found, DomainError):
        return found
    thumbprint = normalize_thumbprint(peer.thumbprint)
    denied = await session.get(DeniedCertificate, thumbprint) if thumbprint else None
    if denied is not None:
        return DomainError("certificate-denied", f"This factory certificate is on the deny-list: {denied.reason}", 403)
    lists: list[tuple[str, tuple[str, ...] | None]] = []
    for account_id in dict.fromkeys((found.device.owner_id, found.site.account_id)):
        account = await session.get(Account, account_id) if account_id else None  # loaded already
        if account is not None:
            allowed = account.manufacturers
            lists.append((account.id, tuple(str(v) for v in allowed) if isinstance(allowed, list) else None))
    refusal = manufacturer_refusal(peer.manufacturer, lists)
    if refusal is not None:
        return DomainError(refusal.reason, refusal.message, refusal.status)
    return found
