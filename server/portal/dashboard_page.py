"""The dashboard: devices by state, locked devices, what the guessing limits refused, recent jobs
and alerts (failed jobs, lockouts), for the administrator's scope (`GET /dashboard`)."""

from __future__ import annotations

from aiohttp import web

from server.portal.calls import call
from server.portal.render import ME, html, need, page

routes = web.RouteTableDef()

STATE_LABELS = {
    "not_approved": "Not approved",
    "unclaimed": "Unclaimed",
    "claimed": "Claimed",
    "associated": "At a site",
    "activated": "Activated",
    "enrolled": "Enrolled",
}
GUESSING_LABELS = {
    "wrong_codes": "Wrong codes",
    "lockouts": "Lockouts",
}


@routes.get("/")
@page
async def dashboard(request: web.Request) -> web.StreamResponse:
    actions = set(request[ME]["actions"])
    figures = need(await call(request, "GET", "/dashboard")) if "dashboard.read" in actions else None
    jobs = need(await call(request, "GET", "/jobs", query={"limit": 8})) if "jobs.read" in actions else None
    failed = (need(await call(request, "GET", "/jobs", query={"limit": 1, "status": "FAIL"}))["total"]
              if jobs is not None else 0)
    alerts: list[str] = []
    if figures is not None:
        if figures["devices"]["locked"]:
            alerts.append(f"{figures['devices']['locked']} device(s) locked out after wrong codes")
        if figures["guessing"].get("lockouts"):
            alerts.append(f"{figures['guessing']['lockouts']} lockout(s) in the last {figures['window']['hours']} h")
    if failed:
        alerts.append(f"{failed} job(s) failed")
    return html(
        request,
        "dashboard.html",
        title="Dashboard",
        figures=figures,
        jobs=jobs,
        alerts=alerts,
        states=STATE_LABELS,
        guessing_labels=GUESSING_LABELS,
        notice="Password changed." if request.query.get("changed") == "password" else None,
    )
