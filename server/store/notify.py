"""NTF-1: queueing notifications into the outbox, honouring each account's switches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.store.models import Notification, NotificationSetting, User


async def queue_notification(
    session: AsyncSession,
    account_id: str,
    kind: str,
    *,
    recipients: Iterable[str] | None = None,
    facts: dict[str, Any] | None = None,
    secret_facts: set[str] | None = None,
) -> Notification | None:
    """Queue one email for `account_id` unless the account switched `kind` off (all on by default).

    `secret_facts` name facts that the email must carry (a reset token) but that are not kept
    readable in the outbox listing; the outbox stores the body for delivery only.
    """
    from server.domain import notifications as rules

    kind = rules.notification_kind(kind).value
    setting = await session.get(NotificationSetting, (account_id, kind))
    if setting is not None and not setting.enabled:
        return None
    if recipients is None:
        recipients = list(await session.scalars(select(User.email).where(User.account_id == account_id)))
    facts = facts or {}
    subject, body = rules.render(kind, **facts)
    # `render` masks secrets; the mail must still carry them. `name: value` lines are what the
    # outbox listing's redaction (server.domain.audit.redact) masks for non-platform readers.
    secrets = [f"{name}: {facts[name]}" for name in sorted(secret_facts or ()) if name in facts]
    if secrets:
        body = body.rstrip("\n") + "\n\n" + "\n".join(secrets) + "\n"
    clock = session.info.get("clock")
    note = Notification(
        account_id=account_id, kind=kind, recipients=sorted(set(recipients)), subject=subject, body=body
    )
    if clock is not None:
        note.created_at = clock()
    session.add(note)
    return note
