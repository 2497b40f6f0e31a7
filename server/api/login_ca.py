"""Admin API: an account's client root CA for USR-3 certificate login (issue 16).

- `GET /accounts/{id}/login-ca` → {`account_id`, `login_ca`: null | {`subject`, `fingerprint`
  (SHA-256, hex), `not_after`, `certificate_pem`}, `certificate_login`: whether this server's
  admin listener takes certificate logins (`enrollab serve --admin-tls`)}.
- `PUT /accounts/{id}/login-ca` {`certificate_pem`}: one PEM CA certificate, valid now
  (`server.domain.login_certificates.parse_login_ca`), else 422 `invalid-login-ca`. The running
  admin listener trusts it for new connections at once.
- `DELETE /accounts/{id}/login-ca`: no client root CA; its certificates log no one in any more.

Who: the account's administrators and those above it (ACC-7), as for updating the account
(the guide sets the client root CA in "Updating an account").
"""

from __future__ import annotations

from typing import Any

from server.api.routing import Api, Req
from server.api.scope import account_in_scope
from server.domain import login_certificates
from server.store.models import Account

api = Api()

SET = {
    "type": "object",
    "required": ["certificate_pem"],
    "additionalProperties": False,
    "properties": {"certificate_pem": {"type": "string", "minLength": 1, "maxLength": login_certificates.MAX_PEM}},
}


def _json(req: Req, acc: Account) -> dict[str, Any]:
    login_ca = None
    if acc.login_ca_pem is not None:
        parsed = login_certificates.describe_login_ca(acc.login_ca_pem)
        login_ca = {
            "subject": parsed.subject,
            "fingerprint": parsed.fingerprint,
            "not_after": parsed.not_after.isoformat(),
            "certificate_pem": parsed.pem,
        }
    return {"account_id": acc.id, "login_ca": login_ca, "certificate_login": req.ctx.admin_ssl is not None}


@api.route("GET", "/accounts/{id}/login-ca", summary="The account's client root CA for certificate login (USR-3)",
           action="accounts.read", process="ACCOUNT", tag="accounts")
async def get_login_ca(req: Req) -> Any:
    return _json(req, await account_in_scope(req.session, req.actor, req.param("id")))


@api.route("PUT", "/accounts/{id}/login-ca",
           summary="Upload the account's client root CA: user certificates it issues log in (CN = login name, USR-3)",
           action="accounts.update", process="ACCOUNT", body=SET, tag="accounts")
async def set_login_ca(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    parsed = login_certificates.parse_login_ca(req.body["certificate_pem"], req.now)
    acc.login_ca_pem = parsed.pem
    req.audit_message = f"client root CA of account {acc.id} set: {parsed.subject} (SHA-256 {parsed.fingerprint})"
    req.audit_account = acc.id
    listener = req.ctx.admin_ssl
    if listener is not None:
        from server.pki.tls import add_login_ca

        async def trust() -> None:
            add_login_ca(listener, parsed.pem)

        req.after_commit.append(trust)
    return _json(req, acc)


@api.route("DELETE", "/accounts/{id}/login-ca", summary="Remove the account's client root CA (USR-3)",
           action="accounts.update", process="ACCOUNT", tag="accounts")
async def delete_login_ca(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.param("id"))
    acc.login_ca_pem = None
    req.audit_message = f"client root CA of account {acc.id} removed"
    req.audit_account = acc.id
    return _json(req, acc)
