"""Email notifications (NTF-1): the acting account's seven switches and the outbox of the subtree.

Decisions (docs/portal.md, "Accounts, administrators, audit log, notifications"):
- The settings form sends every kind (an unticked box is off), so what the page shows is what
  is saved.
- The outbox API shows the platform administrator the secret facts of an email (a password-reset
  token) and redacts them for everyone else; the portal redacts them for every reader, the
  platform too: a page can be left open, cached by a browser or seen over a shoulder, and the
  platform keeps the API for the rare case it needs one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.domain.audit import redact
from server.domain.notifications import NotificationKind
from server.portal.accounts_pages import kept, paging
from server.portal.calls import call
from server.portal.render import ME, action, html, need, page, see_other

routes = web.RouteTableDef()

PAGE = 25
KINDS = tuple((kind.value, kind.label, kind.purpose) for kind in NotificationKind)


async def _page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    settings = need(await call(request, "GET", "/notifications/settings"))
    limit, offset = paging(request, PAGE)
    query = {"kind": request.query["kind"]} if request.query.get("kind") in {k for k, _, _ in KINDS} else {}
    outbox = need(await call(request, "GET", "/notifications/outbox",
                             query={**query, "limit": limit, "offset": offset}))
    notes = [{**note, "body": redact(note["body"] or "")} for note in outbox["items"]]
    return html(request, "notifications.html", status, title="Notifications", settings=settings, kinds=KINDS,
                labels={k: label for k, label, _ in KINDS}, notes=notes, total=outbox["total"], limit=limit,
                offset=offset, query=kept(request, query, limit), account_name=request[ME]["acting_account_name"],
                **values)


@routes.get("/notifications")
@page
async def notifications(request: web.Request) -> web.StreamResponse:
    notice = "The notification settings were saved." if request.query.get("done") == "saved" else None
    return await _page(request, notice=notice)


@routes.post("/notifications/settings")
@action
async def notifications_save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = {kind: form.get(kind) == "on" for kind, _, _ in KINDS}
    answer = await call(request, "PUT", "/notifications/settings", body=body)
    if not answer.ok:
        return await _page(request, answer.status, error=answer.detail or answer.error, error_id=answer.error)
    return see_other("/notifications?done=saved")
