"""Writing LOG-1 entries (secrets redacted) in the caller's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from server.store.models import Account, AuditLog

if TYPE_CHECKING:
    from server.api.actor import Actor
    from server.context import ServerContext


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
    from server.domain.audit import redact

    path: str | None = None
    if account_id:
        acc = await session.get(Account, account_id)
        path = acc.path if acc else None
    elif actor is not None and actor.acting_id:
        account_id, path = actor.acting_id, actor.acting_path
    session.add(
        AuditLog(
            at=ctx.clock(),
            account_id=account_id,
            account_path=path,
            login=actor.login if actor and actor.login else None,
            acting_as=actor.acting_id if actor and actor.switched else None,
            process=process,
            client_host=client_host,
            action=action,
            status=status,
            message=redact(message)[:4000],
        )
    )
