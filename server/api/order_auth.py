"""DEP-1: an order system's API token as the caller (ACC rules apply to its account).

An order system's token acts for the account that registered it, in the role `order_system`
(`permissions.ORDER_SYSTEM`), which may submit and read that order system's batches and nothing
else (ACC-7: everything else answers 403 `forbidden-role`). Only the token's SHA-256 is stored;
deleting the order system ends the token; a disabled account's tokens answer 401
`account-disabled` (ACC-5), as its administrators' do.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import ORDER_TOKEN_PREFIX, Actor, token_digest
from server.context import ServerContext
from server.domain.errors import unauthorized
from server.domain.permissions import ORDER_SYSTEM
from server.store.models import Account, OrderSystem

__all__ = ["ORDER_TOKEN_PREFIX", "order_system_actor", "order_system_login"]


def order_system_login(system: OrderSystem) -> str:
    """How the audit log names an order system (LOG-1 `login`)."""
    return f"order-system:{system.id}:{system.name}"[:254]


async def order_system_actor(session: AsyncSession, token: str, _ctx: ServerContext) -> Actor:
    row = (
        await session.execute(
            select(OrderSystem, Account)
            .join(Account, Account.id == OrderSystem.account_id)
            .where(OrderSystem.token_digest == token_digest(token))
        )
    ).first()
    if row is None:
        raise unauthorized("invalid-token", "the order system's token is unknown or was revoked")
    system, account = row.OrderSystem, row.Account
    if not account.enabled:
        raise unauthorized("account-disabled", "the order system's account is disabled")
    return Actor(
        user_id=0,
        login=order_system_login(system),
        account_id=account.id,
        account_path=account.path,
        acting_id=account.id,
        acting_path=account.path,
        role=ORDER_SYSTEM,
        password_change_required=False,
        order_system_id=system.id,
    )
