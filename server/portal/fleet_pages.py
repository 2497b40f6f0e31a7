"""The fleet view (issue 16, S15): what a QA lead watches during `enrollab fleet run` — devices by
enrollment stage, locked devices, and the latest steps the server recorded, refreshed every two
seconds (`GET /fleet/status`; the page works without script too: reload it)."""

from __future__ import annotations

from aiohttp import web

from server.portal.calls import call
from server.portal.render import html, need, page

routes = web.RouteTableDef()

STAGE_LABELS = {
    "imported": "Imported",
    "approved": "Approved",
    "claimed": "Claimed",
    "associated": "At a site",
    "activated": "Activated",
    "first_contact": "First contact",
    "redirected": "Redirected",
    "identity_issued": "Identity certificate",
}


@routes.get("/fleet")
@page
async def fleet(request: web.Request) -> web.StreamResponse:
    scope = {k: request.query.get(k) for k in ("account_id", "site_id", "label") if request.query.get(k)}
    status = need(await call(request, "GET", "/fleet/status", query={**scope, "limit": 25}))
    counts = status.get("counts") or {"total": 0, "by_stage": {}, "locked": 0}
    return html(request, "fleet.html", title="Fleet", fleet=status, counts=counts, stages=STAGE_LABELS,
                scope=scope, changes=list(reversed(status["changes"])))
