"""Devices: search, filter, sort and page through the devices of the administrator's scope
(`GET /devices` with a DEV-11 filter), select some for a bulk job, and one device's detail —
identity, firmware, site and profile, labels, its enrollment timeline (issue 16) and history.

The search box is a convenience over DEV-11: a text that can be a MAC prefix matches MACs by
prefix, and any text matches serial numbers and models by prefix and labels by name. The
filters add conditions (`all`); the advanced filter takes a DEV-11 document as it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from server.portal.calls import call
from server.portal.render import ME, action, html, need, page, see_other

routes = web.RouteTableDef()

PAGE_SIZE = 50
MAC_PREFIX = re.compile(r"^[0-9A-Fa-f]{2}([:.-]?[0-9A-Fa-f]{1,2})*$|^[0-9A-Fa-f]{1,12}$")
# the dashboard's states (server.store.figures.device_state) as DEV-11 conditions
STATES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "not_approved": ("Not approved", [{"field": "approved", "op": "eq", "value": False}]),
    "unclaimed": ("Unclaimed", [{"field": "approved", "op": "eq", "value": True},
                                {"field": "owner_id", "op": "eq", "value": None}]),
    "claimed": ("Claimed", [{"field": "owner_id", "op": "ne", "value": None},
                            {"field": "associated", "op": "eq", "value": False}]),
    "associated": ("At a site", [{"field": "associated", "op": "eq", "value": True},
                                 {"field": "activated", "op": "eq", "value": False}]),
    "activated": ("Activated", [{"field": "activated", "op": "eq", "value": True},
                                {"field": "enrolled", "op": "eq", "value": False}]),
    "enrolled": ("Enrolled", [{"field": "activated", "op": "eq", "value": True},
                              {"field": "enrolled", "op": "eq", "value": True}]),
}
COLUMNS = (("mac", "MAC"), ("serial", "Serial"), ("model", "Model"), ("firmware", "Firmware"),
           ("site_id", "Site"), ("last_contact", "Last contact"))
SINGLE_ACTIONS = {  # the device page's buttons: portal name -> (API call, label, permission)
    "activate": ("/devices/activate", "Activate", "devices.activate"),
    "deactivate": ("/devices/deactivate", "Deactivate", "devices.activate"),
    "unlock": ("/devices/unlock", "Lift lockout", "devices.unlock"),
    "disassociate": ("/devices/disassociate", "Remove from site", "devices.disassociate"),
    "release": ("/devices/release", "Release", "devices.release"),
    "approve": ("/devices/approve", "Approve", "devices.approve"),
}


def _filter(query: Any) -> tuple[str | None, str]:
    """The DEV-11 document the page's fields ask for (None: everything), and a user error."""
    advanced = str(query.get("filter", "")).strip()
    if advanced:
        return advanced, ""
    conditions: list[Any] = []
    text = str(query.get("find", "")).strip()
    if text:
        anyof: list[dict[str, Any]] = [
            {"field": "serial", "op": "starts_with", "value": text},
            {"field": "model", "op": "starts_with", "value": text},
            {"field": "label", "op": "eq", "value": text},
        ]
        if MAC_PREFIX.match(text):
            anyof.insert(0, {"field": "mac", "op": "starts_with", "value": text})
        conditions.append({"any": anyof})
    state = str(query.get("state", ""))
    if state in STATES:
        conditions.extend(STATES[state][1])
    for name in ("model", "firmware", "label"):
        value = str(query.get(name, "")).strip()
        if value:
            conditions.append({"field": name, "op": "eq", "value": value})
    site = str(query.get("site_id", "")).strip()
    if site:
        if not site.isascii() or not site.isdigit():
            return None, "A site is given by its number."
        conditions.append({"field": "site_id", "op": "eq", "value": int(site)})
    return (json.dumps({"all": conditions}) if conditions else None), ""


def _offset(query: Any) -> int:
    text = str(query.get("offset", "0"))
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0


@routes.get("/devices")
@page
async def devices(request: web.Request) -> web.StreamResponse:
    query = request.query
    q, problem = _filter(query)
    sort = str(query.get("sort", "mac"))
    offset = _offset(query)
    kept = {k: query[k] for k in ("find", "state", "model", "firmware", "label", "site_id", "filter", "sort")
            if query.get(k)}
    answer = None
    if not problem:
        result = await call(request, "GET", "/devices",
                            query={"q": q, "sort": sort, "limit": PAGE_SIZE, "offset": offset})
        if result.ok:
            answer = result.body
        elif result.status in (400, 422):
            problem = result.detail
        else:
            need(result)
    return html(
        request, "devices.html", 200 if not problem else 400,
        title="Devices", answer=answer, error=problem, query=kept, offset=offset, limit=PAGE_SIZE, sort=sort,
        states={k: v[0] for k, v in STATES.items()}, columns=COLUMNS,
    )


async def _history(request: web.Request, mac: str) -> list[dict[str, Any]] | None:
    if "logs.read" not in request[ME]["actions"]:
        return None
    q = json.dumps({"all": [{"field": "message", "op": "contains", "value": mac}]})
    result = await call(request, "GET", "/logs", query={"q": q, "limit": 50})
    return result.body["items"] if result.ok else None


@routes.get("/devices/{mac}")
@page
async def device(request: web.Request) -> web.StreamResponse:
    mac = request.match_info["mac"]
    found = need(await call(request, "GET", "/devices/{mac}", params={"mac": mac}))
    timeline = await call(request, "GET", "/devices/{mac}/timeline", params={"mac": found["mac"]})
    site = None  # the site's name and what its devices are sent (profile, server, URL redacted)
    if found.get("site_id") and "sites.read" in request[ME]["actions"]:
        answer = await call(request, "GET", "/sites/{id}", params={"id": found["site_id"]})
        site = answer.body if answer.ok else None
    actions = set(request[ME]["actions"])
    buttons = [(name, label) for name, (_, label, permission) in SINGLE_ACTIONS.items() if permission in actions]
    return html(
        request, "device.html", title=f"Device {found['mac']}", device=found,
        timeline=timeline.body if timeline.ok else None, site=site, history=await _history(request, found["mac"]),
        buttons=buttons, notice=request.query.get("done"), error=request.query.get("refused"),
    )


@routes.post("/devices/{mac}/do")
@action
async def device_action(request: web.Request) -> web.StreamResponse:
    mac = request.match_info["mac"]
    form = await request.post()
    chosen = SINGLE_ACTIONS.get(str(form.get("do", "")))
    if chosen is None:
        return html(request, "error.html", 400, title="Refused", error="unknown-action",
                    detail="Choose one of the device's actions.")
    path, label, _ = chosen
    result = await call(request, "POST", path, body={"macs": [mac]})
    if not result.ok:
        return html(request, "error.html", result.status, title="Refused", error=result.error, detail=result.detail)
    outcome = (result.body.get("results") or [{}])[0] if isinstance(result.body, dict) else {}
    target = f"/devices/{mac}"
    if outcome.get("status") == "FAIL":
        return see_other(f"{target}?refused={_q(label + ': ' + str(outcome.get('detail') or outcome.get('reason')))}")
    return see_other(f"{target}?done={_q(label + ': done')}")


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:300], safe="")
