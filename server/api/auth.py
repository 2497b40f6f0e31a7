"""Admin API: login, tokens, password change and reset, TOTP, switch account (USR-1..4, ACC-9, ACC-10).

Failed logins are throttled per client address and per login name (issue 13,
`server.domain.login_throttle`; docs/decisions.md "Login throttling"): 429 `too-many-attempts`
with `Retry-After`, audited as a FAIL like every refused login.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from server.api import hashing
from server.api.actor import token_digest
from server.api.login_throttle import current_login_throttle
from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope
from server.domain import accounts as account_rules
from server.domain import passwords, permissions
from server.domain.errors import DomainError, conflict, forbidden, invalid, too_many, unauthorized
from server.domain.login_throttle import FAILED, NEITHER, SUCCEEDED, Refusal
from server.store.models import Account, ResetToken, Token, User
from server.store.notify import queue_notification

api = Api()

LOGIN = {
    "type": "object",
    "required": ["login", "password"],
    "additionalProperties": False,
    "properties": {
        "login": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "otp": {"type": "string", "pattern": "^[0-9]{3} ?[0-9]{3}$"},
    },
}
CHANGE = {
    "type": "object",
    "required": ["old_password", "new_password"],
    "additionalProperties": False,
    "properties": {
        "old_password": {"type": "string", "maxLength": 1024},
        "new_password": {"type": "string", "maxLength": 1024},
    },
}
RESET_REQUEST = {
    "type": "object",
    "required": ["login"],
    "additionalProperties": False,
    "properties": {"login": {"type": "string", "maxLength": 254}},
}
RESET = {
    "type": "object",
    "required": ["token", "new_password"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "maxLength": 128},
        "new_password": {"type": "string", "maxLength": 1024},
    },
}
SWITCH_TO = {
    "type": "object",
    "required": ["account_id"],
    "additionalProperties": False,
    "properties": {"account_id": {"type": "string", "pattern": "^[0-9]{8}$"}},
}


async def two_factor_required(req: Req, account: Account) -> bool:
    """ACC-10: the account's own switch, or — for a reseller — its service provider's switch for resellers."""
    chain: list[tuple[bool, bool]] = [(account.two_factor, account.two_factor_children)]
    if account.parent_id and account.type == "reseller":
        parent = await req.session.get(Account, account.parent_id)
        if parent is not None:
            chain.append((parent.two_factor, parent.two_factor_children))
    return account_rules.two_factor_required(chain)


async def issue_token(req: Req, user: User, acting: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    req.session.add(
        Token(
            digest=token_digest(token),
            user_id=user.id,
            acting_account_id=acting,
            created_at=req.now,
            expires_at=req.now + timedelta(hours=req.ctx.token_hours),
        )
    )
    return token


# The login throttle's answer (server.domain.login_throttle), documented for clients and fuzzers.
TOO_MANY_LOGINS = {
    "429": {
        "description": "too many failed logins from this address or for this login name: `too-many-attempts`",
        "headers": {
            "Retry-After": {
                "description": "seconds until the next try is let through",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}
# What counts as a failed try (a guess): the rest of the refusals come after a right password.
COUNTED = frozenset({"invalid-credentials", "invalid-otp", "otp-replayed"})


@api.route(
    "POST",
    "/auth/login",
    summary="Log in with login name, password and (with 2FA) a TOTP code",
    action=None,
    process="LOGIN",
    body=LOGIN,
    audited=True,
    tag="auth",
    responses=TOO_MANY_LOGINS,
)
async def login(req: Req) -> Any:
    """Throttled before anything is looked up or hashed (issue 13): a refused try costs the
    server no password hash, and it is answered alike for known and unknown names."""
    return await throttled(req, req.body["login"], lambda: _check_login(req))


async def throttled(req: Req, login: str, check: Callable[[], Awaitable[Any]]) -> Any:
    """Run one login `check` under the failed-login throttle (issue 13) for `login` and the
    client's address: 429 before `check` runs when refused; a COUNTED refusal counts as a failure."""
    gate = req.ctx.login_throttle
    await current_login_throttle(req)
    attempt = gate.begin(login, req.client_host, req.now)
    if isinstance(attempt, Refusal):
        raise too_many(
            "too-many-attempts",
            f"too many failed logins ({attempt.which}) for {login!r}; try again in {attempt.retry_after} seconds",
            attempt.retry_after,
        )
    outcome = NEITHER
    try:
        answer = await check()
        outcome = SUCCEEDED
        return answer
    except DomainError as err:
        outcome = FAILED if err.error in COUNTED else NEITHER
        raise
    finally:
        gate.end(attempt, outcome, req.now)


async def _check_login(req: Req) -> Any:
    user = await req.session.scalar(select(User).where(User.login == req.body["login"]))
    # Verify against a dummy hash when the login is unknown, so timing does not reveal names.
    stored = user.password_hash if user else passwords.DUMMY_HASH
    ok = await hashing.verify_password(stored, req.body["password"])
    if user is None or not ok:
        # The name tried goes into the detail so the LOG-1 FAIL entry says who was tried (never the password).
        raise unauthorized("invalid-credentials", f"wrong login name or password for {req.body['login']!r}")
    account = await req.session.get(Account, user.account_id)
    assert account is not None
    if not account.enabled:
        raise unauthorized("account-disabled", "this administrator's account is disabled (ACC-5)")
    answer = await second_factor(req, user, account, req.body.get("otp"))
    if passwords.password_needs_rehash(user.password_hash):
        user.password_hash = await hashing.hash_password(req.body["password"])
    return await signed_in(req, user, account, answer)


async def second_factor(req: Req, user: User, account: Account, code: str | None) -> dict[str, Any]:
    """USR-4 after a first factor (password or certificate): the TOTP code where 2FA is on, or the
    secret to scan at the first login under 2FA (then in the answer as `otp_setup`)."""
    if not (await two_factor_required(req, account) or user.totp_secret):
        return {}
    if user.totp_secret is None:
        # First login under 2FA: hand over the secret to scan; later logins need the code.
        user.totp_secret = passwords.new_totp_secret()
        return {"otp_setup": {"secret": user.totp_secret, "uri": passwords.totp_uri(user.totp_secret, user.login)}}
    if not code:
        raise unauthorized("otp-required", "two-factor authentication is on: send 'otp' (USR-4)")
    step = passwords.matching_totp_step(user.totp_secret, code, req.now)
    if step is None:
        raise unauthorized("invalid-otp", "the one-time code is wrong or expired (USR-4)")
    if user.totp_last_step is not None and step <= user.totp_last_step:
        raise unauthorized("otp-replayed", "this one-time code was already used: wait for the next one (USR-4)")
    user.totp_last_step = step
    return {}


async def signed_in(req: Req, user: User, account: Account, answer: dict[str, Any]) -> dict[str, Any]:
    """A new token for `user`, who is the call's actor from now on (audit), and the login answer."""
    token = await issue_token(req, user)
    req.actor = req.actor.__class__(
        user.id, user.login, account.id, account.path, account.id, account.path, account.type, user.password_temporary
    )
    req.audit_message = f"login {user.login}"
    return {
        "token": token,
        "password_change_required": user.password_temporary,
        "account_id": account.id,
        "role": account.type,
        **answer,
    }


@api.route(
    "POST",
    "/auth/logout",
    summary="End this token",
    action="accounts.read",
    process="LOGIN",
    tag="auth",
    allow_password_change=True,
)
async def logout(req: Req) -> Any:
    header = req.bearer
    await req.session.execute(delete(Token).where(Token.digest == token_digest(header)))
    return {"logged_out": True}


@api.route(
    "POST",
    "/auth/password",
    summary="Change your password (USR-1: required after a temporary one)",
    action="accounts.read",
    process="USER",
    body=CHANGE,
    tag="auth",
    allow_password_change=True,
)
async def change_password(req: Req) -> Any:
    user = await req.session.get(User, req.actor.user_id)
    assert user is not None
    if not await hashing.verify_password(user.password_hash, req.body["old_password"]):
        raise forbidden("invalid-credentials", "the old password is wrong")
    if req.body["new_password"] == req.body["old_password"]:
        raise invalid("password-unchanged", "the new password must differ from the old one")
    passwords.check_password_policy(req.body["new_password"], login=user.login)
    user.password_hash = await hashing.hash_password(req.body["new_password"])
    user.password_temporary = False
    req.audit_message = f"password changed for {user.login}"
    return {"password_change_required": False}


@api.route(
    "POST",
    "/auth/reset-request",
    summary="Ask for a password reset link, sent by email; valid 5 minutes, once (USR-2)",
    action=None,
    process="USER",
    body=RESET_REQUEST,
    audited=True,
    tag="auth",
    status=202,
)
async def request_reset(req: Req) -> Any:
    user = await req.session.scalar(select(User).where(User.login == req.body["login"]))
    if user is not None:
        token, digest = passwords.new_reset_token()
        req.session.add(ResetToken(digest=digest, user_id=user.id, created_at=req.now))
        await queue_notification(
            req.session,
            user.account_id,
            "user-password-reset",
            recipients=[user.email],
            facts={"login": user.login, "token": token},
            secret_facts={"token"},
        )
        req.audit_account = user.account_id
    req.audit_message = f"password reset requested for {req.body['login']}"
    # Same answer whether or not the login exists: names cannot be probed.
    return Reply({"status": "sent-if-known"}, 202)


@api.route(
    "POST",
    "/auth/reset",
    summary="Set a new password with a reset token (USR-2)",
    action=None,
    process="USER",
    body=RESET,
    audited=True,
    tag="auth",
)
async def reset_password(req: Req) -> Any:
    digest = passwords.reset_token_digest(req.body["token"])
    row = await req.session.get(ResetToken, digest)
    if row is None or not passwords.reset_token_usable(row.created_at, row.used_at, req.now):
        raise invalid("invalid-reset-token", "the reset link is unknown, used, or older than 5 minutes")
    user = await req.session.get(User, row.user_id)
    assert user is not None
    passwords.check_password_policy(req.body["new_password"], login=user.login)
    row.used_at = req.now
    user.password_hash = await hashing.hash_password(req.body["new_password"])
    user.password_temporary = False
    await req.session.execute(delete(Token).where(Token.user_id == user.id))
    req.audit_account = user.account_id
    req.audit_message = f"password reset for {user.login}"
    return {"reset": True}


@api.route(
    "POST",
    "/auth/switch",
    summary="Act as a reseller of your subtree (ACC-9, once approved)",
    action="accounts.switch",
    process="SWITCH",
    body=SWITCH_TO,
    tag="auth",
)
async def switch_account(req: Req) -> Any:
    own = await req.session.get(Account, req.actor.account_id)
    assert own is not None
    if not own.switch_approved:
        raise forbidden("switch-not-approved", "a platform administrator has not approved switching for this account")
    target = await account_in_scope(req.session, req.actor, req.body["account_id"])
    if target.type != "reseller":
        raise forbidden("switch-not-reseller", "you can switch only to a reseller account")
    digest = token_digest(req.bearer)
    tok = await req.session.get(Token, digest)
    assert tok is not None
    tok.acting_account_id = target.id
    req.audit_message = f"{req.actor.login} switched to {target.id}"
    return {"acting_account_id": target.id}


@api.route(
    "POST",
    "/auth/switch/exit",
    summary="Stop acting as another account (ACC-9)",
    action="accounts.read",
    process="SWITCH",
    tag="auth",
)
async def exit_switch(req: Req) -> Any:
    digest = token_digest(req.bearer)
    tok = await req.session.get(Token, digest)
    assert tok is not None
    tok.acting_account_id = None
    req.audit_message = f"{req.actor.login} returned to {req.actor.account_id}"
    return {"acting_account_id": req.actor.account_id}


@api.route(
    "POST",
    "/auth/two-factor",
    summary="Opt in to two-factor authentication yourself (ACC-10): returns the TOTP secret to scan",
    action="accounts.read",
    process="USER",
    tag="auth",
)
async def enable_own_two_factor(req: Req) -> Any:
    user = await req.session.get(User, req.actor.user_id)
    assert user is not None
    if user.totp_secret is not None:
        raise conflict("two-factor-enrolled", "two-factor authentication is already on for you")
    user.totp_secret = passwords.new_totp_secret()
    user.totp_last_step = None
    req.audit_message = f"{user.login} switched two-factor authentication on"
    return {"otp_setup": {"secret": user.totp_secret, "uri": passwords.totp_uri(user.totp_secret, user.login)}}


@api.route(
    "DELETE",
    "/auth/two-factor",
    summary="Opt out of two-factor authentication, unless your account requires it (ACC-10)",
    action="accounts.read",
    process="USER",
    tag="auth",
)
async def disable_own_two_factor(req: Req) -> Any:
    user = await req.session.get(User, req.actor.user_id)
    account = await req.session.get(Account, req.actor.account_id)
    assert user is not None and account is not None
    if await two_factor_required(req, account):
        raise forbidden("two-factor-required", "your account requires two-factor authentication (ACC-10)")
    user.totp_secret = None
    user.totp_last_step = None
    req.audit_message = f"{user.login} switched two-factor authentication off"
    return {"two_factor": False}


@api.route(
    "GET",
    "/auth/me",
    summary="Who this token is: administrator, account, acting account (ACC-9), role and the actions it may call",
    action="accounts.read",
    process="LOGIN",
    tag="auth",
    allow_password_change=True,
)
async def who_am_i(req: Req) -> Any:
    actor = req.actor
    user = await req.session.get(User, actor.user_id)
    acting = await req.session.get(Account, actor.acting_id)
    return {
        "user_id": actor.user_id,
        "login": actor.login,
        "first_name": user.first_name if user is not None else "",
        "last_name": user.last_name if user is not None else "",
        "two_factor": bool(user is not None and user.totp_secret),
        "account_id": actor.account_id,
        "acting_account_id": actor.acting_id,
        "acting_account_name": acting.name if acting is not None else "",
        "switched": actor.switched,
        "role": actor.role,
        "password_change_required": actor.password_change_required,
        "actions": sorted(a for a in permissions.ALLOWED if permissions.allowed(actor.role, a)),
    }
