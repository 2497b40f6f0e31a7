"""ACC-7: an administrator sees and acts on its own account and its descendants only.

Out-of-scope objects answer 404 exactly like missing ones, so account IDs cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from server.api.actor import Actor
from server.domain.errors import not_found
from server.store.models import Account


def in_subtree(actor: Actor, path: str | None) -> bool:
    return bool(path) and path.startswith(actor.acting_path)  # type: ignore[union-attr]


def subtree_clause(actor: Actor, column: ColumnElement[str] | QueryableAttribute[str]) -> ColumnElement[bool]:
    """SQL condition: `column` (a materialised account path) lies in the actor's subtree."""
    return column.startswith(actor.acting_path, autoescape=True)


async def account_in_scope(session: AsyncSession, actor: Actor, account_id: str) -> Account:
    acc = await session.get(Account, account_id) if account_id.isdigit() else None
    if acc is None or not in_subtree(actor, acc.path):
        raise not_found("account-not-found", f"no account {account_id} in your hierarchy")
    return acc
