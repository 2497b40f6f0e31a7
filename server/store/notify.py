"""NTF-1: queueing notifications into the outbox, honouring each account's switches.

`queue_notification` queues one email through the ORM session of an admin call;
`queue_notifications` queues many through a Core connection of `Store.run_write` (the
enrollment writer's group commit) with three look-ups for the whole batch. Both follow the
same rules: nothing for a kind the account switched off, every administrator of the account
by default, facts rendered and masked by `server.domain.notifications.render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain import notifications as rules
from server.store.models import Account, Notification, NotificationSetting, User


class PendingNotice(NamedTuple):
    """One email to queue with `queue_notifications`: to the administrators of `account_id`."""

    account_id: str
    kind: str
    facts: Mapping[str, Any]
    created_at: datetime


def _message(kind: str, facts: Mapping[str, Any], secret_facts: set[str] | None) -> tuple[str, str]:
    subject, body = rules.render(kind, **facts)
    # `render` masks secrets; the mail must still carry them. `name: value` lines are what the
    # outbox listing's redaction (server.domain.audit.redact) masks for non-platform readers.
    secrets = [f"{name}: {facts[name]}" for name in sorted(secret_facts or ()) if name in facts]
    if secrets:
        body = body.rstrip("\n") + "\n\n" + "\n".join(secrets) + "\n"
    return subject, body


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
    kind = rules.notification_kind(kind).value
    setting = await session.get(NotificationSetting, (account_id, kind))
    if setting is not None and not setting.enabled:
        return None
    if recipients is None:
        recipients = list(await session.scalars(select(User.email).where(User.account_id == account_id)))
    subject, body = _message(kind, facts or {}, secret_facts)
    clock = session.info.get("clock")
    note = Notification(
        account_id=account_id, kind=kind, recipients=sorted(set(recipients)), subject=subject, body=body
    )
    if clock is not None:
        note.created_at = clock()
    session.add(note)
    return note


def queue_notifications(conn: Connection, notices: Sequence[PendingNotice]) -> int:
    """Queue emails to every administrator of each notice's account, skipping accounts that no
    longer exist and kinds an account switched off. Answers how many were queued."""
    if not notices:
        return 0
    accounts = sorted({notice.account_id for notice in notices})
    existing = set(conn.scalars(select(Account.id).where(Account.id.in_(accounts))))
    if not existing:
        return 0
    switched_off = {
        (row.account_id, row.kind)
        for row in conn.execute(
            select(NotificationSetting.account_id, NotificationSetting.kind).where(
                NotificationSetting.account_id.in_(sorted(existing)), NotificationSetting.enabled.is_(False)
            )
        )
    }
    emails: dict[str, set[str]] = {}
    for row in conn.execute(select(User.account_id, User.email).where(User.account_id.in_(sorted(existing)))):
        emails.setdefault(row.account_id, set()).add(row.email)
    rows = []
    for account_id, kind_name, facts, created_at in notices:
        kind = rules.notification_kind(kind_name).value
        if account_id not in existing or (account_id, kind) in switched_off:
            continue
        subject, body = _message(kind, facts, None)
        rows.append(
            {
                "account_id": account_id,
                "kind": kind,
                "recipients": sorted(emails.get(account_id, ())),
                "subject": subject,
                "body": body,
                "created_at": created_at,
            }
        )
    if rows:
        conn.execute(insert(Notification), rows)
    return len(rows)
