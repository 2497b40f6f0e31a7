"""Admin API: administrators (USR-1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.api import hashing
from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope, subtree_clause
from server.domain import passwords
from server.domain.errors import conflict, forbidden, not_found
from server.domain.inputs import name_schema
from server.store.models import Account, User

api = Api()

_NAME = name_schema(100)
CREATE = {
    "type": "object",
    "required": ["account_id", "login", "password", "email"],
    "additionalProperties": False,
    "properties": {
        "account_id": {"type": "string", "pattern": "^[0-9]{8}$"},
        "login": {"type": "string", "minLength": 3, "maxLength": 254},
        "password": {"type": "string", "maxLength": 1024},
        "email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", "maxLength": 254},
        "first_name": _NAME,
        "last_name": _NAME,
        "locale": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
    },
}
PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "account_id": {"type": "string"},  # refused: USR-1, never changed
        "email": CREATE["properties"]["email"],  # type: ignore[index]
        "first_name": _NAME,
        "last_name": _NAME,
        "locale": CREATE["properties"]["locale"],  # type: ignore[index]
        "password": {"type": "string", "maxLength": 1024},
    },
}


def user_json(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "account_id": u.account_id,
        "login": u.login,
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "locale": u.locale,
        "password_change_required": u.password_temporary,
        "two_factor_enrolled": u.totp_secret is not None,
        "created_at": u.created_at,
    }


async def _user_in_scope(req: Req) -> User:
    user = await req.session.get(User, req.int_param("id"))
    if user is not None:
        acc = await req.session.get(Account, user.account_id)
        if acc is not None and acc.path.startswith(req.actor.acting_path):
            return user
    raise not_found("user-not-found", f"no administrator {req.param('id')} in your hierarchy")


@api.route(
    "POST",
    "/users",
    summary="Add an administrator to an account of your hierarchy (USR-1)",
    action="users.create",
    process="USER",
    body=CREATE,
    status=201,
)
async def create_user(req: Req) -> Any:
    acc = await account_in_scope(req.session, req.actor, req.body["account_id"])
    login = passwords.check_login_name(req.body["login"])
    if await req.session.scalar(select(User.id).where(User.login == login)) is not None:
        raise conflict("login-taken", "that login name is taken", login)
    passwords.check_password_policy(req.body["password"], login=login)
    user = User(
        account_id=acc.id,
        login=login,
        password_hash=await hashing.hash_password(req.body["password"]),
        password_temporary=True,  # USR-1: set by someone else
        email=req.body["email"],
        first_name=req.body.get("first_name", ""),
        last_name=req.body.get("last_name", ""),
        locale=req.body.get("locale", "en"),
        created_at=req.now,
    )
    req.session.add(user)
    await req.session.flush()
    req.audit_account = acc.id
    req.audit_message = f"added administrator {login} to {acc.id}"
    return Reply(user_json(user), 201)


@api.route("GET", "/users", summary="List administrators of your hierarchy", action="users.read", process="USER")
async def list_users(req: Req) -> Any:
    limit, offset = req.page()
    q = select(User).join(Account, Account.id == User.account_id).where(subtree_clause(req.actor, Account.path))
    if aid := req.query("account_id"):
        q = q.where(User.account_id == aid)
    total = await req.session.scalar(select(func.count()).select_from(q.subquery()))
    rows = await req.session.scalars(q.order_by(User.id).limit(limit).offset(offset))
    return {"items": [user_json(u) for u in rows], "total": total}


@api.route("GET", "/users/{id}", summary="Read an administrator", action="users.read", process="USER")
async def get_user(req: Req) -> Any:
    return user_json(await _user_in_scope(req))


@api.route(
    "PATCH",
    "/users/{id}",
    summary="Update an administrator; its account never changes (USR-1)",
    action="users.update",
    process="USER",
    body=PATCH,
)
async def update_user(req: Req) -> Any:
    user = await _user_in_scope(req)
    if "account_id" in req.body and req.body["account_id"] != user.account_id:
        raise forbidden("user-account-immutable", "an administrator never changes account (USR-1)")
    for key in ("email", "first_name", "last_name", "locale"):
        if key in req.body:
            setattr(user, key, req.body[key])
    if "password" in req.body:
        if user.id == req.actor.user_id:
            # One's own password changes only with the old one (POST /auth/password).
            raise forbidden("use-password-change", "change your own password with POST /api/v1/auth/password")
        passwords.check_password_policy(req.body["password"], login=user.login)
        user.password_hash = await hashing.hash_password(req.body["password"])
        # USR-1: a password set by someone else is temporary; one's own change goes via /auth/password.
        user.password_temporary = user.id != req.actor.user_id
    req.audit_account = user.account_id
    req.audit_message = f"updated administrator {user.login}: {', '.join(sorted(req.body))}"
    return user_json(user)


@api.route("DELETE", "/users/{id}", summary="Delete an administrator", action="users.delete", process="USER")
async def delete_user(req: Req) -> Any:
    user = await _user_in_scope(req)
    if user.id == req.actor.user_id:
        raise forbidden("own-user", "an administrator cannot delete itself")
    await req.session.delete(user)
    req.audit_account = user.account_id
    req.audit_message = f"deleted administrator {user.login}"
    return {"deleted": user.id}
