"""Who is calling: bearer-token authentication (PROTOCOL §3) and the acting account (ACC-9)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.context import ServerContext
from server.domain.errors import unauthorized
from server.store.models import Account, Token, User


@dataclass(frozen=True)
class Actor:
    """An authenticated administrator and the account it acts for.

    `account_*` is the administrator's own account; `acting_*` differs only after an ACC-9 switch.
    """

    user_id: int
    login: str
    account_id: str
    account_path: str
    acting_id: str
    acting_path: str
    role: str
    password_change_required: bool
    order_system_id: int | None = None  # DEP-1: set when an order system's API token calls

    @property
    def switched(self) -> bool:
        return self.acting_id != self.account_id


ORDER_TOKEN_PREFIX = "eos_"  # noqa: S105 - the prefix that marks an order system's API token, no secret
ANONYMOUS = Actor(0, "", "", "", "", "", "anonymous", False)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def authenticate(session: AsyncSession, header: str, ctx: ServerContext, *, public: bool) -> Actor:
    """The actor an `Authorization` header value names (empty: anonymous where `public`)."""
    if not header:
        if public:
            return ANONYMOUS
        raise unauthorized("auth-required", "log in first: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("auth-required", "the Authorization header must be 'Bearer <token>'")
    if not token.isascii():  # tokens are ASCII; other bytes arrive as surrogate escapes
        raise unauthorized("invalid-token", "the token is unknown or expired: log in again")
    if token.strip().startswith(ORDER_TOKEN_PREFIX):  # DEP-1: an order system's API token
        from server.api.order_auth import order_system_actor

        return await order_system_actor(session, token.strip(), ctx)
    row = (
        await session.execute(
            select(Token, User, Account)
            .join(User, User.id == Token.user_id)
            .join(Account, Account.id == User.account_id)
            .where(Token.digest == token_digest(token.strip()))
        )
    ).first()
    if row is None or row.Token.expires_at <= ctx.clock():
        raise unauthorized("invalid-token", "the token is unknown or expired: log in again")
    tok, user, account = row.Token, row.User, row.Account
    if not account.enabled:  # ACC-5: disabling blocks logins, including live sessions
        raise unauthorized("account-disabled", "this administrator's account is disabled")
    acting = account
    if tok.acting_account_id and tok.acting_account_id != account.id:
        found = await session.get(Account, tok.acting_account_id)
        if found is not None and found.path.startswith(account.path):
            acting = found
    return Actor(
        user_id=user.id,
        login=user.login,
        account_id=account.id,
        account_path=account.path,
        acting_id=acting.id,
        acting_path=acting.path,
        role=acting.type,
        password_change_required=user.password_temporary,
    )
