"""Signing in and out: password or — over HTTPS (`enrollab serve --admin-tls`) — the user
certificate the browser presents (USR-3), then a TOTP code where 2FA is on (USR-4, ACC-10), the
first 2FA set-up shown once, the temporary-password change (USR-1), logout, switch account (ACC-9).

The login form is protected against login CSRF by a double-submit token (a cookie set with the
form, which a cross-site page cannot read or set); every other form uses the session's token."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import segno
from aiohttp import web

from server.api.routing import CTX
from server.portal import session
from server.portal.calls import Result, call
from server.portal.render import ME, action, html, page, see_other

routes = web.RouteTableDef()
LOGIN_CSRF = "enrollab_login_csrf"


def _next(value: Any) -> str:
    """Where to go after signing in: a path of this portal only (no open redirect)."""
    target = value if isinstance(value, str) else "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return "/"
    return target


def _sign_in_form(request: web.Request, template: str, status: int, **values: Any) -> web.Response:
    """A sign-in step's form with a fresh double-submit token (cookie and hidden field)."""
    nonce = secrets.token_urlsafe(24)
    response = html(request, template, status, login_csrf=nonce, next=_next(request.query.get("next", "/")),
                    **values)
    response.set_cookie(LOGIN_CSRF, nonce, httponly=True, samesite="Strict", secure=request.secure, path="/login")
    return response


def _login_form(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    return _sign_in_form(request, "login.html", status, certificate_login=request.secure, **values)


def _login_csrf_ok(request: web.Request, form: Any) -> bool:
    cookie, sent = request.cookies.get(LOGIN_CSRF, ""), form.get("login_csrf", "")
    return bool(cookie) and isinstance(sent, str) and hmac.compare_digest(cookie, sent) and session.same_origin(request)


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request)


def _refusal(result: Result) -> str:
    sentences = {
        "invalid-credentials": "Wrong login name or password.",
        "invalid-otp": "That code is wrong or expired.",
        "otp-replayed": "That code was already used: wait for the next one.",
        "account-disabled": "This administrator's account is disabled.",
        "too-many-attempts": "Too many failed logins: wait a while and try again.",
        "certificate-required": "Your browser presented no certificate: import your user certificate "
        "and choose it when the browser asks.",
    }
    return sentences.get(result.error, result.detail or "The login was refused.")


async def _signed_in(request: web.Request, answer: Result, target: str) -> web.StreamResponse:
    tok = answer.body["token"]
    if "otp_setup" in answer.body:  # the first login under 2FA: the secret, once
        setup = answer.body["otp_setup"]
        qr = segno.make(setup["uri"], error="m").svg_data_uri(scale=4)
        response: web.StreamResponse = html(request, "otp_setup.html", secret=setup["secret"], qr=qr,
                                            next=target)
    else:
        response = see_other("/password" if answer.body.get("password_change_required") else target)
    session.set_session(response, request, tok)
    response.del_cookie(session.PENDING_COOKIE, path="/login")
    response.del_cookie(LOGIN_CSRF, path="/login")
    return response


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = _next(form.get("next"))
    if not _login_csrf_ok(request, form):
        return _login_form(request, 403, error="This form is stale: please sign in again.")
    login, password = str(form.get("login", "")), str(form.get("password", ""))
    if not login or not password:
        return _login_form(request, 400, error="Enter your login name and password.", login=login)
    answer = await call(request, "POST", "/auth/login", body={"login": login, "password": password}, token="")
    if answer.ok:
        return await _signed_in(request, answer, target)
    if answer.error == "otp-required":
        return _to_code_step(request, target, session.Pending(login, password))
    return _login_form(request, answer.status if answer.status in (401, 403, 429) else 400,
                       error=_refusal(answer), login=login)


def _to_code_step(request: web.Request, target: str, first_factor: session.Pending) -> web.StreamResponse:
    """USR-4: the first factor is right and a TOTP code is needed: seal it and ask for the code."""
    ctx = request.app[CTX]
    sealed = session.seal_pending(ctx.data_dir, first_factor.login, first_factor.password, ctx.clock().timestamp(),
                                  method=first_factor.method)
    response = see_other("/login/otp?" + urlencode({"next": target}))
    session.set_pending(response, request, sealed)
    return response


@routes.post("/login/certificate")
async def certificate_submit(request: web.Request) -> web.StreamResponse:
    """USR-3: the certificate the browser presented in this connection's handshake logs in."""
    form = await request.post()
    target = _next(form.get("next"))
    if not _login_csrf_ok(request, form):
        return _login_form(request, 403, error="This form is stale: please sign in again.")
    answer = await call(request, "POST", "/auth/certificate", body={}, token="")
    if answer.ok:
        return await _signed_in(request, answer, target)
    if answer.error == "otp-required":
        return _to_code_step(request, target, session.Pending("", "", "certificate"))
    return _login_form(request, answer.status if answer.status in (401, 403, 429) else 400, error=_refusal(answer))


def _otp_form(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    return _sign_in_form(request, "login_otp.html", status, **values)


@routes.get("/login/otp")
async def otp_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    if session.open_pending(ctx.data_dir, request, ctx.clock().timestamp()) is None:
        return _login_form(request, error="Sign in again: the second step waits 5 minutes at most.")
    return _otp_form(request)


@routes.post("/login/otp")
async def otp_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ctx = request.app[CTX]
    target = _next(form.get("next"))
    if not _login_csrf_ok(request, form):
        return _login_form(request, 403, error="This form is stale: please sign in again.")
    pending = session.open_pending(ctx.data_dir, request, ctx.clock().timestamp())
    if pending is None:
        return _login_form(request, error="Sign in again: the second step waits 5 minutes at most.")
    otp = str(form.get("otp", "")).strip()
    if not otp.replace(" ", "").isdigit() or len(otp.replace(" ", "")) != 6:
        return _otp_form(request, 400, error="The code is the 6 digits your authenticator app shows.")
    if pending.method == "certificate":
        answer = await call(request, "POST", "/auth/certificate", body={"otp": otp}, token="")
    else:
        answer = await call(request, "POST", "/auth/login",
                            body={"login": pending.login, "password": pending.password, "otp": otp}, token="")
    if answer.ok:
        return await _signed_in(request, answer, target)
    return _otp_form(request, answer.status if answer.status in (401, 429) else 400, error=_refusal(answer))


@routes.get("/password")
@page
async def password_page(request: web.Request) -> web.StreamResponse:
    return html(request, "password.html", required=request[ME]["password_change_required"])


@routes.post("/password")
@action
async def password_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    old, new, again = (str(form.get(k, "")) for k in ("old_password", "new_password", "new_password_again"))
    required = request[ME]["password_change_required"]
    if new != again:
        return html(request, "password.html", 400, required=required, error="The two new passwords differ.")
    answer = await call(request, "POST", "/auth/password", body={"old_password": old, "new_password": new})
    if not answer.ok:
        return html(request, "password.html", answer.status, required=required,
                    error=answer.detail or "The password was not changed.")
    return see_other("/?changed=password")


@routes.post("/logout")
@action
async def logout(request: web.Request) -> web.StreamResponse:
    await call(request, "POST", "/auth/logout")
    response = see_other("/login")
    session.clear_session(response)
    return response


@routes.post("/switch")
@action
async def switch(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    answer = await call(request, "POST", "/auth/switch", body={"account_id": str(form.get("account_id", ""))})
    if not answer.ok:
        return html(request, "error.html", answer.status, title="Not switched", error=answer.error,
                    detail=answer.detail)
    return see_other("/")


@routes.post("/switch/exit")
@action
async def switch_exit(request: web.Request) -> web.StreamResponse:
    await call(request, "POST", "/auth/switch/exit")
    return see_other("/")
