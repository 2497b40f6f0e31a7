"""Writing LOG-1 entries (secrets redacted) in the caller's transaction: one through the ORM
session of an admin call, or many at once through a Core connection of `Store.run_write` (the
enrollment writer's group commit, ENR-5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.audit import redact
from server.store.models import Account, AuditLog

if TYPE_CHECKING:
    from server.api.actor import Actor
    from server.context import ServerContext

MESSAGE_CHARS = 4000


def audit_values(
    *,
    at: datetime,
    process: str,
    action: str,
    status: str,
    message: str = "",
    client_host: str | None = None,
    account_id: str | None = None,
    account_path: str | None = None,
    login: str | None = None,
    acting_as: str | None = None,
) -> dict[str, Any]:
    """LOG-1: one entry's columns — time, account, process, client host, action, status, message,
    the message redacted and capped."""
    return {
        "at": at,
        "account_id": account_id,
        "account_path": account_path,
        "login": login,
        "acting_as": acting_as,
        "process": process,
        "client_host": client_host,
        "action": action,
        "status": status,
        "message": redact(message)[:MESSAGE_CHARS],
    }


async def write_audit(
    session: AsyncSession,
    ctx: ServerContext,
    actor: Actor | None,
    *,
    process: str,
    action: str,
    status: str,
    message: str = "",
    client_host: str | None = None,
    account_id: str | None = None,
) -> None:
    """LOG-1: time, account, process, client host, action, status, message — redacted."""
    path: str | None = None
    if account_id:
        acc = await session.get(Account, account_id)
        path = acc.path if acc else None
    elif actor is not None and actor.acting_id:
        account_id, path = actor.acting_id, actor.acting_path
    values = audit_values(
        at=ctx.clock(),
        process=process,
        action=action,
        status=status,
        message=message,
        client_host=client_host,
        account_id=account_id,
        account_path=path,
        login=actor.login if actor and actor.login else None,
        acting_as=actor.acting_id if actor and actor.switched else None,
    )
    session.add(AuditLog(**values))


def insert_audit_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Many `audit_values` rows in one statement, in the caller's transaction (`Store.run_write`)."""
    if rows:
        conn.execute(insert(AuditLog), list(rows))
