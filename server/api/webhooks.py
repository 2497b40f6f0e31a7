"""Admin API: signed webhooks per account (issue 16) — register, list, change, delete, rotate the
secret, ping, and the delivery log (docs/webhooks.md is the receiver's side).

Decisions:
- A webhook belongs to an account of the actor's hierarchy (its own by default); everything
  about one outside the hierarchy answers 404 like a missing one (ACC-7). It hears the events
  of its account's subtree (`server.domain.webhooks`).
- The secret is in the answer of POST /webhooks and POST /webhooks/{id}/rotate-secret only,
  never in a GET, an audit message or a log line; a rotation replaces it at once (attempts
  from then on are signed with the new one). Audit messages name a URL by scheme, host and
  path only: a receiver's query string may carry a token of its own.
- Re-enabling a webhook (PATCH `enabled: true`) clears why it was disabled (410 Gone); its
  deliveries still pending are sent again, those already `failed` stay so unless redelivered
  (POST /webhooks/{id}/deliveries/{delivery_id}/redeliver, one more attempt now).
- The delivery log answers what a delivery-log page shows: per delivery the event, its ids,
  status, attempts, the last answer or error, the next attempt and delivered_at; per delivery
  also every attempt (GET …/deliveries/{delivery_id}).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from server.api.routing import Api, Reply, Req
from server.api.scope import account_in_scope, subtree_clause
from server.domain import webhooks as rules
from server.domain.errors import invalid, not_found
from server.domain.inputs import name_schema
from server.store import webhooks as _hooks  # noqa: F401 - registers the flush hooks (job events)
from server.store.models import Webhook, WebhookAttempt, WebhookDelivery

api = Api()

_EVENTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": len(rules.SUBSCRIBABLE),
    "items": {"type": "string", "enum": list(rules.SUBSCRIBABLE)},
}
_URL = {"type": "string", "minLength": 1, "maxLength": rules.URL_MAX}
CREATE = {
    "type": "object",
    "required": ["url", "events"],
    "additionalProperties": False,
    "properties": {
        "url": _URL,
        "events": _EVENTS,
        "account_id": {"type": "string", "maxLength": 8},
        "description": name_schema(256),
        "enabled": {"type": "boolean"},
    },
}
CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "url": _URL,
        "events": _EVENTS,
        "description": name_schema(256),
        "enabled": {"type": "boolean"},
    },
}
_STATUSES = (rules.PENDING, rules.DELIVERED, rules.FAILED)


def shown_url(url: str) -> str:
    """A URL as audit messages name it: scheme, host, port and path, without query or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def webhook_json(hook: Webhook, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": hook.id,
        "account_id": hook.account_id,
        "url": hook.url,
        "events": list(hook.events or []),
        "description": hook.description,
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "created_by": hook.created_by,
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
        "secret_rotated_at": hook.secret_rotated_at,
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "delivery_id": d.delivery_id,
        "event_id": d.event_id,
        "event": d.event,
        "account_id": d.account_id,
        "status": d.status,
        "attempts": d.attempts,
        "max_attempts": rules.MAX_ATTEMPTS,
        "created_at": d.created_at,
        "last_attempt_at": d.last_attempt_at,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at if d.status == rules.PENDING else None,
        "delivered_at": d.delivered_at,
    }


def attempt_json(a: WebhookAttempt) -> dict[str, Any]:
    return {"number": a.number, "at": a.at, "status": a.status, "error": a.error, "duration_ms": a.duration_ms}


async def _webhook_in_scope(req: Req) -> Webhook:
    hook_id = req.int_param("id")
    hook = await req.session.scalar(
        select(Webhook).where(Webhook.id == hook_id, subtree_clause(req.actor, Webhook.account_path))
    )
    if hook is None:
        raise not_found("webhook-not-found", f"no webhook {hook_id} in your hierarchy")
    return hook


async def _delivery_of(req: Req, hook: Webhook) -> WebhookDelivery:
    wanted = req.param("delivery_id")  # the delivery id (dlv_…) or the log row's number
    by_row = wanted.isdigit() and len(wanted) < 10
    cond = WebhookDelivery.id == int(wanted) if by_row else WebhookDelivery.delivery_id == wanted
    found = await req.session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id, cond))
    if found is None:
        raise not_found("delivery-not-found", f"no delivery {wanted[:40]!r} of webhook {hook.id}")
    return found


@api.route(
    "POST",
    "/webhooks",
    summary="Register a signed webhook for an account of your hierarchy (issue 16); the secret is shown once",
    action="webhooks.manage",
    process="WEBHOOK",
    body=CREATE,
    status=201,
)
async def create_webhook(req: Req) -> Any:
    account_id = req.body.get("account_id") or req.actor.acting_id
    account = await account_in_scope(req.session, req.actor, account_id)
    url = rules.check_url(req.body["url"])
    events = rules.check_events(req.body["events"])
    secret = rules.new_secret()
    now = req.now
    hook = Webhook(
        account_id=account.id,
        account_path=account.path,
        url=url,
        events=events,
        description=req.body.get("description", ""),
        secret=secret,
        enabled=req.body.get("enabled", True),
        created_by=req.actor.login,
        created_at=now,
        updated_at=now,
    )
    req.session.add(hook)
    await req.session.flush()
    req.audit_message = f"registered webhook {hook.id} {shown_url(url)} for {', '.join(events)}"
    req.audit_account = account.id
    return Reply(webhook_json(hook, secret), 201)


@api.route(
    "GET",
    "/webhooks",
    summary="Webhooks of your hierarchy (issue 16); secrets are never listed",
    action="webhooks.read",
    process="WEBHOOK",
    query=(("account_id", "only this account's"),),
)
async def list_webhooks(req: Req) -> Any:
    limit, offset = req.page()
    cond = [subtree_clause(req.actor, Webhook.account_path)]
    if account_id := req.query("account_id"):
        cond.append(Webhook.account_id == account_id)
    total = await req.session.scalar(select(func.count()).select_from(Webhook).where(*cond))
    hooks = list(
        await req.session.scalars(select(Webhook).where(*cond).order_by(Webhook.id).limit(limit).offset(offset))
    )
    rows = await req.session.execute(
        select(WebhookDelivery.webhook_id, func.count())
        .where(WebhookDelivery.status == rules.PENDING, WebhookDelivery.webhook_id.in_([h.id for h in hooks]))
        .group_by(WebhookDelivery.webhook_id)
    )
    pending = {hook_id: n for hook_id, n in rows}
    items = []
    for hook in hooks:
        item = webhook_json(hook)
        item["pending_deliveries"] = pending.get(hook.id, 0)
        items.append(item)
    return {"items": items, "total": total, "events": list(rules.SUBSCRIBABLE)}


@api.route("GET", "/webhooks/{id}", summary="One webhook (issue 16)", action="webhooks.read", process="WEBHOOK")
async def get_webhook(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    body = webhook_json(hook)
    rows = await req.session.execute(
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.webhook_id == hook.id)
        .group_by(WebhookDelivery.status)
    )
    counts = {status: n for status, n in rows}
    body["deliveries"] = {status: counts.get(status, 0) for status in _STATUSES}
    return body


@api.route(
    "PATCH",
    "/webhooks/{id}",
    summary="Change a webhook's URL, events, description or enabled switch (issue 16)",
    action="webhooks.manage",
    process="WEBHOOK",
    body=CHANGE,
)
async def change_webhook(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    changed = []
    if "url" in req.body:
        hook.url = rules.check_url(req.body["url"])
        changed.append(f"url {shown_url(hook.url)}")
    if "events" in req.body:
        hook.events = rules.check_events(req.body["events"])
        changed.append(f"events {', '.join(hook.events)}")
    if "description" in req.body:
        hook.description = req.body["description"]
        changed.append("description")
    if "enabled" in req.body:
        hook.enabled = bool(req.body["enabled"])
        if hook.enabled:
            hook.disabled_reason = None
        changed.append("enabled" if hook.enabled else "disabled")
    hook.updated_at = req.now
    req.audit_message = f"changed webhook {hook.id}: {'; '.join(changed)}"
    req.audit_account = hook.account_id
    return webhook_json(hook)


@api.route(
    "DELETE",
    "/webhooks/{id}",
    summary="Delete a webhook and its delivery log (issue 16)",
    action="webhooks.manage",
    process="WEBHOOK",
)
async def delete_webhook(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    req.audit_message = f"deleted webhook {hook.id} {shown_url(hook.url)}"
    req.audit_account = hook.account_id
    await req.session.delete(hook)
    return {"deleted": hook.id}


@api.route(
    "POST",
    "/webhooks/{id}/rotate-secret",
    summary="Replace a webhook's signing secret at once; the new one is shown once (issue 16)",
    action="webhooks.manage",
    process="WEBHOOK",
)
async def rotate_webhook_secret(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    secret = rules.new_secret()
    hook.secret = secret
    hook.secret_rotated_at = hook.updated_at = req.now
    req.audit_message = f"rotated the secret of webhook {hook.id}"
    req.audit_account = hook.account_id
    return webhook_json(hook, secret)


@api.route(
    "POST",
    "/webhooks/{id}/ping",
    summary="Queue a signed `webhook.ping` event to this webhook alone (issue 16)",
    action="webhooks.manage",
    process="WEBHOOK",
    status=202,
)
async def ping_webhook(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    if not hook.enabled:
        raise invalid("webhook-disabled", f"webhook {hook.id} is disabled; enable it first")
    now = req.now
    event_id = rules.new_id("evt")
    data = {"webhook_id": hook.id, "requested_by": req.actor.login}
    delivery = WebhookDelivery(
        webhook_id=hook.id,
        delivery_id=rules.new_id("dlv"),
        event_id=event_id,
        event=rules.EventType.PING.value,
        account_id=hook.account_id,
        body=rules.event_body(event_id, rules.EventType.PING.value, now, hook.account_id, data),
        status=rules.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    req.session.add(delivery)
    await req.session.flush()
    req.session.sync_session.info["webhooks_queued"] = True
    req.audit_message = f"pinged webhook {hook.id}"
    req.audit_account = hook.account_id
    return Reply(delivery_json(delivery), 202)


@api.route(
    "GET",
    "/webhooks/{id}/deliveries",
    summary="A webhook's delivery log, newest first (issue 16)",
    action="webhooks.read",
    process="WEBHOOK",
    query=(("status", "pending | delivered | failed"), ("event", "an event type")),
)
async def list_deliveries(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    limit, offset = req.page()
    cond = [WebhookDelivery.webhook_id == hook.id]
    if status := req.query("status"):
        if status not in _STATUSES:
            raise invalid("invalid-status", f"status must be one of {', '.join(_STATUSES)}", status[:40])
        cond.append(WebhookDelivery.status == status)
    if kind := req.query("event"):
        cond.append(WebhookDelivery.event == kind)
    total = await req.session.scalar(select(func.count()).select_from(WebhookDelivery).where(*cond))
    rows = await req.session.scalars(
        select(WebhookDelivery).where(*cond).order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)
    )
    return {"items": [delivery_json(d) for d in rows], "total": total, "webhook_id": hook.id}


@api.route(
    "GET",
    "/webhooks/{id}/deliveries/{delivery_id}",
    summary="One delivery with every attempt and the body sent (issue 16)",
    action="webhooks.read",
    process="WEBHOOK",
)
async def get_delivery(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    delivery = await _delivery_of(req, hook)
    attempts = await req.session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id).order_by(WebhookAttempt.number)
    )
    body = delivery_json(delivery)
    body["body"] = delivery.body
    body["attempt_log"] = [attempt_json(a) for a in attempts]
    return body


@api.route(
    "POST",
    "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    summary="Try a delivery again now, once more (issue 16)",
    action="webhooks.manage",
    process="WEBHOOK",
    status=202,
)
async def redeliver(req: Req) -> Any:
    hook = await _webhook_in_scope(req)
    delivery = await _delivery_of(req, hook)
    if delivery.status == rules.DELIVERED:
        raise invalid("already-delivered", f"delivery {delivery.delivery_id} was delivered")
    delivery.status = rules.PENDING
    delivery.next_attempt_at = req.now
    req.session.sync_session.info["webhooks_queued"] = True
    req.audit_message = f"redelivery of {delivery.delivery_id} ({delivery.event}) to webhook {hook.id}"
    req.audit_account = hook.account_id
    return Reply(delivery_json(delivery), 202)

