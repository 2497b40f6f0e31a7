"""Admin API: USR-3 certificate login, `POST /api/v1/auth/certificate` {`otp`?} (issue 16).

Over the HTTPS admin listener (`enrollab serve --admin-tls`) a client may present a user
certificate in the TLS handshake; this call turns it into a token, as `POST /auth/login` turns a
password into one, with the same answer, USR-4 second step, ACC-5 disabled-account refusal,
throttle and LOG-1 audit. Whose certificate logs in whom: `server.domain.login_certificates`.

Refusals: 401 `certificate-required` (plain HTTP, or no client certificate in this connection),
401 `certificate-refused` (the detail says why: CN is not a login name, wrong CA, not for client
authentication), then as `/auth/login` (`account-disabled`, `otp-required`, `invalid-otp`, …).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.api.auth import TOO_MANY_LOGINS, second_factor, signed_in, throttled
from server.api.routing import Api, Req
from server.domain import login_certificates
from server.domain.errors import unauthorized
from server.pki.tls import peer_chain
from server.store.models import Account, User

api = Api()

CERTIFICATE_LOGIN = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"otp": {"type": "string", "pattern": "^[0-9]{3} ?[0-9]{3}$"}},
}


@api.route(
    "POST",
    "/auth/certificate",
    summary="Log in with the user certificate presented in the TLS handshake (CN = login name, USR-3)",
    action=None,
    process="LOGIN",
    body=CERTIFICATE_LOGIN,
    audited=True,
    tag="auth",
    responses=TOO_MANY_LOGINS,
)
async def certificate_login(req: Req) -> Any:
    transport = req.request.transport
    chain = peer_chain(transport) if transport is not None else []
    if not chain:
        raise unauthorized(
            "certificate-required",
            "no client certificate in this connection: certificate login needs the HTTPS admin listener "
            "(enrollab serve --admin-tls) and a user certificate presented in the TLS handshake (USR-3)",
        )
    login = login_certificates.leaf_common_name(chain[0]) or ""
    return await throttled(req, login, lambda: _check(req, chain, login))


async def _check(req: Req, chain: list[bytes], login: str) -> Any:
    user = await req.session.scalar(select(User).where(User.login == login)) if login else None
    if user is None:
        raise unauthorized("certificate-refused",
                           f"no administrator logs in as {login!r} with this certificate (USR-3)")
    account = await req.session.get(Account, user.account_id)
    assert account is not None
    others = await req.session.scalars(
        select(Account.login_ca_pem).where(Account.login_ca_pem.is_not(None), Account.id != account.id)
    )
    login_certificates.check_chain(
        chain,
        login,
        account.login_ca_pem,
        {login_certificates.ca_fingerprint(pem) for pem in others if pem},
        req.ctx.login_public_cas,
    )
    if not account.enabled:
        raise unauthorized("account-disabled", "this administrator's account is disabled (ACC-5)")
    answer = await second_factor(req, user, account, req.body.get("otp") if isinstance(req.body, dict) else None)
    result = await signed_in(req, user, account, answer)
    req.audit_message = f"certificate login {user.login}"
    return result
