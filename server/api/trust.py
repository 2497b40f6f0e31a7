"""Admin API: which factory certificates may enroll (issue 13) — the deny-list and each account's
manufacturer-CA allow-list.

- `GET/POST /certificates/denied`, `DELETE /certificates/denied/{thumbprint}` (platform): a
  factory certificate on the deny-list is refused at enrollment with 403 `rejected`, reason
  `certificate-denied` and the list's reason in the detail, audited like every refusal (ENR-5).
  Unlike a CRL (`enrollab pki revoke`, refused in the handshake with no reason a device or an
  operator can read), the list is in the database: every server process sees it at once, and it
  works for any manufacturer's certificates, also those whose CRL we do not sign.
- `GET /manufacturers`: the labels of the manufacturer CAs the device listener trusts (`local`
  for the server's own, `trusted-manufacturers/NAME.pem` for the others).
- `GET/PUT /accounts/{id}/manufacturers` {`manufacturers`: [labels] | null}: an account's
  allow-list; its devices (held by it, on its sites, or enrolling with its codes) enroll only
  with a factory certificate of a listed CA, otherwise 403 `rejected`, reason
  `manufacturer-not-allowed`. null: every CA the platform trusts. The account's administrators
  and those above it (ACC-7) set it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.api.routing import Api, Req
from server.api.scope import account_in_scope
from server.domain.errors import DomainError, invalid, not_found
from server.pki.keys import normalize_thumbprint
from server.store.models import DeniedCertificate

api = Api()

MAX_DENY = 1000  # thumbprints per call
_THUMBPRINT = {"type": "string", "minLength": 1, "maxLength": 95}  # 64 hex digits, ":" allowed (checked below)
DENY = {
    "type": "object",
    "required": ["thumbprints", "reason"],
    "additionalProperties": False,
    "properties": {
        "thumbprints": {"type": "array", "minItems": 1, "maxItems": MAX_DENY, "items": _THUMBPRINT},
        "reason": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}
_LABEL = {"type": "string", "minLength": 1, "maxLength": 64}
ALLOW = {
    "type": "object",
    "required": ["manufacturers"],
    "additionalProperties": False,
    "properties": {
        "manufacturers": {"oneOf": [{"type": "null"}, {"type": "array", "maxItems": 100, "items": _LABEL}]},
    },
}


def _thumbprint(value: str) -> str:
    text = normalize_thumbprint(value)
    if text is None:
        raise invalid("invalid-thumbprint", "A thumbprint is the SHA-256 of the certificate's DER: 64 hex digits.",
                      value=value[:95])
    return text


def _denied_json(row: DeniedCertificate) -> dict[str, Any]:
    return {"thumbprint": row.thumbprint, "reason": row.reason, "denied_at": row.denied_at, "denied_by": row.denied_by}


@api.route("GET", "/certificates/denied", summary="The factory-certificate deny-list", action="certificates.read",
           process="DEVICE", tag="certificates")
async def list_denied(req: Req) -> Any:
    limit, offset = req.page()
    rows = await req.session.scalars(
        select(DeniedCertificate).order_by(DeniedCertificate.denied_at, DeniedCertificate.thumbprint)
        .limit(limit).offset(offset))
    return {"denied": [_denied_json(row) for row in rows]}


@api.route("POST", "/certificates/denied", summary="Put factory certificates on the deny-list (refused at enrollment)",
           action="certificates.deny", process="DEVICE", body=DENY, tag="certificates")
async def deny(req: Req) -> Any:
    thumbprints = list(dict.fromkeys(_thumbprint(t) for t in req.body["thumbprints"]))
    reason = req.body["reason"]
    added = []
    for thumbprint in thumbprints:
        row = await req.session.get(DeniedCertificate, thumbprint)
        if row is None:
            row = DeniedCertificate(thumbprint=thumbprint, reason=reason, denied_at=req.ctx.clock(),
                                    denied_by=req.actor.login)
            req.session.add(row)
            added.append(thumbprint)
        else:
            row.reason = reason
    await req.session.flush()
    req.audit_message = f"denied {len(thumbprints)} factory certificate(s) ({len(added)} new): {reason}"
    return {"denied": thumbprints, "added": added}


@api.route("DELETE", "/certificates/denied/{thumbprint}", summary="Take a factory certificate off the deny-list",
           action="certificates.deny", process="DEVICE", tag="certificates")
async def undeny(req: Req) -> Any:
    thumbprint = _thumbprint(req.param("thumbprint"))
    row = await req.session.get(DeniedCertificate, thumbprint)
    if row is None:
        raise not_found("not-denied", f"{thumbprint} is not on the deny-list")
    await req.session.delete(row)
    req.audit_message = f"took {thumbprint} off the deny-list"
    return {"thumbprint": thumbprint, "denied": False}


def _labels(req: Req) -> list[str]:
    pki = req.ctx.pki
    return pki.manufacturer_labels() if pki is not None else []


@api.route("GET", "/manufacturers", summary="The manufacturer CAs the device listener trusts, by label",
           action="accounts.read", process="ACCOUNT", tag="certificates")
async def manufacturers(req: Req) -> Any:
    return {"manufacturers": _labels(req)}


@api.route("GET", "/accounts/{id}/manufacturers", summary="An account's manufacturer-CA allow-list (null: any)",
           action="accounts.read", process="ACCOUNT", tag="certificates")
async def get_allowed(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    return {"account_id": acc.id, "manufacturers": acc.manufacturers}


@api.route("PUT", "/accounts/{id}/manufacturers",
           summary="Allow only these manufacturer CAs' factory certificates for the account's devices",
           action="accounts.manufacturers", process="ACCOUNT", body=ALLOW, tag="certificates")
async def set_allowed(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    wanted = req.body["manufacturers"]
    if wanted is not None:
        known = _labels(req)
        unknown = [label for label in wanted if label not in known]
        if unknown:
            raise DomainError("unknown-manufacturer",
                              f"no trusted manufacturer CA {unknown[0]!r}; known: {', '.join(known)}", 422, unknown[0])
        wanted = list(dict.fromkeys(wanted))
    acc.manufacturers = wanted
    req.audit_account = acc.id
    req.audit_message = (f"manufacturer allow-list of {acc.id}: "
                         + ("any trusted" if wanted is None else ", ".join(wanted) or "none"))
    return {"account_id": acc.id, "manufacturers": acc.manufacturers}
