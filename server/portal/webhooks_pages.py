"""Webhooks (issue 16): an account's signed webhooks — register (the secret shown once), change,
enable/disable, rotate the secret (shown once), ping, delete — and each webhook's delivery log
with every attempt, through the admin API's /webhooks routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.domain.webhooks import SUBSCRIBABLE
from server.portal.calls import call
from server.portal.render import action, html, need, page, see_other

routes = web.RouteTableDef()
PAGE_SIZE = 50


def _form_hook(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": str(form.get("url", "")).strip(),
        "events": [e for e in form.getall("events", []) if isinstance(e, str)],
    }
    description = str(form.get("description", "")).strip()
    if description:
        body["description"] = description
    return body


@routes.get("/webhooks")
@page
async def webhooks(request: web.Request) -> web.StreamResponse:
    listed = need(await call(request, "GET", "/webhooks", query={"limit": 200}))
    return html(request, "webhooks.html", title="Webhooks", hooks=listed["items"], events=SUBSCRIBABLE,
                form={"url": "", "events": list(SUBSCRIBABLE), "description": ""})


@routes.post("/webhooks")
@action
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = _form_hook(form)
    result = await call(request, "POST", "/webhooks", body=body)
    if not result.ok:
        listed = need(await call(request, "GET", "/webhooks", query={"limit": 200}))
        return html(request, "webhooks.html", result.status, title="Webhooks", hooks=listed["items"],
                    events=SUBSCRIBABLE, form={"description": "", **body}, error=result.detail)
    return html(request, "webhook_secret.html", 201, title="Webhook registered", hook=result.body,
                secret=result.body["secret"])


@routes.get("/webhooks/{id}")
@page
async def webhook(request: web.Request) -> web.StreamResponse:
    hook_id = request.match_info["id"]
    hook = need(await call(request, "GET", "/webhooks/{id}", params={"id": hook_id}))
    offset_text = request.query.get("offset", "0")
    offset = int(offset_text) if offset_text.isascii() and offset_text.isdigit() and len(offset_text) < 10 else 0
    status = request.query.get("status", "")
    deliveries = need(await call(request, "GET", "/webhooks/{id}/deliveries", params={"id": hook_id},
                                 query={"status": status, "limit": PAGE_SIZE, "offset": offset}))
    return html(request, "webhook.html", title=f"Webhook {hook['id']}", hook=hook, deliveries=deliveries,
                events=SUBSCRIBABLE, offset=offset, limit=PAGE_SIZE,
                query={"status": status} if status else {}, notice=request.query.get("done"))


@routes.get("/webhooks/{id}/deliveries/{delivery_id}")
@page
async def delivery(request: web.Request) -> web.StreamResponse:
    params = {"id": request.match_info["id"], "delivery_id": request.match_info["delivery_id"]}
    found = need(await call(request, "GET", "/webhooks/{id}/deliveries/{delivery_id}", params=params))
    return html(request, "webhook_delivery.html", title="Delivery", hook_id=params["id"], delivery=found)


@routes.post("/webhooks/{id}/do")
@action
async def webhook_action(request: web.Request) -> web.StreamResponse:
    hook_id = request.match_info["id"]
    form = await request.post()
    what = str(form.get("do", ""))
    params = {"id": hook_id}
    if what == "save":
        body = _form_hook(form)
        body["enabled"] = form.get("enabled") == "on"
        result = await call(request, "PATCH", "/webhooks/{id}", params=params, body=body)
    elif what == "rotate":
        result = await call(request, "POST", "/webhooks/{id}/rotate-secret", params=params)
        if result.ok:
            return html(request, "webhook_secret.html", title="New webhook secret", hook=result.body,
                        secret=result.body["secret"])
    elif what == "ping":
        result = await call(request, "POST", "/webhooks/{id}/ping", params=params)
    elif what == "delete":
        result = await call(request, "DELETE", "/webhooks/{id}", params=params)
        if result.ok:
            return see_other("/webhooks")
    elif what == "redeliver":
        result = await call(request, "POST", "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
                            params={**params, "delivery_id": str(form.get("delivery_id", ""))})
    else:
        return html(request, "error.html", 400, title="Refused", error="unknown-action",
                    detail="Choose one of the webhook's actions.")
    if not result.ok:
        return html(request, "error.html", result.status, title="Refused", error=result.error, detail=result.detail)
    return see_other(f"/webhooks/{hook_id}?done={what}")
