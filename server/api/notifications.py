"""Admin API: email notification switches and the outbox (NTF-1).

Decisions:
- Switches belong to the account an administrator acts for; all seven kinds are on until that
  account switches one off. `GET` answers `{kind_id: bool}` for every kind and `PUT` takes the
  same shape (any subset), so what one reads can be written back unchanged.
- The outbox lists the notifications queued for the actor's subtree, newest first. Secrets in
  bodies (the reset token of a "User Password Reset" email) are shown to the platform
  administrator only — the lab has no mail server by default, and the platform operator already
  may set any administrator's password, so it learns nothing it could not do — and are
  redacted for every other reader, including the account the email is for: a reset token read
  from the admin API by someone other than its mailbox's owner is exactly what it protects against.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, func, select

from server.api.routing import Api, Req
from server.api.scope import subtree_clause
from server.domain import notifications as rules
from server.domain.audit import redact
from server.domain.permissions import PLATFORM
from server.store.models import Account, Notification, NotificationSetting

api = Api()

SETTINGS = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {kind.value: {"type": "boolean", "description": kind.purpose} for kind in rules.NotificationKind},
}


async def _settings(req: Req) -> dict[str, bool]:
    rows = await req.session.scalars(
        select(NotificationSetting).where(NotificationSetting.account_id == req.actor.acting_id)
    )
    return rules.effective_settings({r.kind: r.enabled for r in rows})


@api.route(
    "GET",
    "/notifications/settings",
    summary="Your account's email notification switches, all on by default (NTF-1)",
    action="notifications.read",
    process="SETTINGS",
    tag="notifications",
)
async def get_settings(req: Req) -> Any:
    return await _settings(req)


@api.route(
    "PUT",
    "/notifications/settings",
    summary="Switch email notifications on or off for your account (NTF-1)",
    action="notifications.write",
    process="SETTINGS",
    body=SETTINGS,
    tag="notifications",
)
async def put_settings(req: Req) -> Any:
    change = rules.validate_settings_patch(req.body)
    for kind, enabled in change.items():
        row = await req.session.get(NotificationSetting, (req.actor.acting_id, kind))
        if row is None:
            req.session.add(NotificationSetting(account_id=req.actor.acting_id, kind=kind, enabled=enabled))
        else:
            row.enabled = enabled
    req.audit_message = "notifications: " + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in sorted(change.items()))
    await req.session.flush()
    return await _settings(req)


def _note_json(note: Notification, *, show_secrets: bool) -> dict[str, Any]:
    return {
        "id": note.id,
        "account_id": note.account_id,
        "kind": note.kind,
        "recipients": note.recipients,
        "subject": note.subject,
        "body": note.body if show_secrets else redact(note.body),
        "created_at": note.created_at,
        "sent_at": note.sent_at,
    }


@api.route(
    "GET",
    "/notifications/outbox",
    summary="Emails queued for your subtree, newest first; secrets redacted (NTF-1)",
    action="notifications.read",
    process="SETTINGS",
    tag="notifications",
    query=(("kind", "a notification kind id"), ("account_id", "only this account's")),
)
async def list_outbox(req: Req) -> Any:
    limit, offset = req.page()
    cond = [subtree_clause(req.actor, cast(ColumnElement[str], Account.path))]
    if kind := req.query("kind"):
        cond.append(Notification.kind == rules.notification_kind(kind).value)
    if account_id := req.query("account_id"):
        cond.append(Notification.account_id == account_id)
    base = select(Notification).join(Account, Account.id == Notification.account_id).where(*cond)
    total = await req.session.scalar(select(func.count()).select_from(base.subquery()))
    rows = await req.session.scalars(
        base.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit).offset(offset)
    )
    show = req.actor.role == PLATFORM
    return {"items": [_note_json(n, show_secrets=show) for n in rows], "total": total}
