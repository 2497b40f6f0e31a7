"""The audit log (LOG-1, ENR-5): the subtree's entries, newest first, with filters and a CSV download.

Decisions (docs/portal.md, "Accounts, administrators, audit log, notifications"):
- The filter form's fields (account, actor login, process, action, status, message, from, to)
  become the API's `q` filter (all conditions ANDed) and its `from`/`to`; an optional raw JSON
  filter (the API's own `q` format) is ANDed with them. A filter the API refuses is drawn next to
  the form with its sentence, status 400.
- "Download CSV" (`/logs/export.csv`) carries the same query string and passes
  `GET /logs/export?format=csv` through with the API's own Content-Disposition: the file's rows
  are the filtered page's entries, newest first, cells neutralised by the API.
- A time typed without a zone (the browser's datetime-local) is UTC, as the API reads it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.domain import audit
from server.portal.accounts_pages import kept, paging
from server.portal.calls import call
from server.portal.render import html, need, page

routes = web.RouteTableDef()

PAGE = 50
PROCESSES = tuple(sorted(audit.PROCESSES))
# form field -> (log field, op)
CONDITIONS = (
    ("account_id", "account_id", "eq"),
    ("login", "login", "contains"),
    ("process", "process", "eq"),
    ("action", "action", "contains"),
    ("status", "status", "eq"),
    ("message", "message", "contains"),
)
FILTER_KEYS = (*(name for name, _, _ in CONDITIONS), "q", "from", "to")


def _filters(request: web.Request) -> dict[str, str]:
    return {k: request.query[k].strip() for k in FILTER_KEYS if request.query.get(k, "").strip()}


def api_query(filters: dict[str, str]) -> dict[str, str]:
    """The API's `q`, `from` and `to` for the form's filters."""
    items: list[Any] = [{"field": field, "op": op, "value": filters[name]}
                        for name, field, op in CONDITIONS if name in filters]
    query: dict[str, str] = {k: filters[k] for k in ("from", "to") if k in filters}
    if "q" in filters:
        try:
            typed = json.loads(filters["q"])
        except ValueError:
            typed = None
        if not items or not isinstance(typed, dict):
            query["q"] = filters["q"]  # as typed: the API's refusal names what is wrong with it
            return query
        if typed:
            items.append(typed)
    if items:
        query["q"] = json.dumps({"all": items})
    return query


@routes.get("/logs")
@page
async def logs_list(request: web.Request) -> web.StreamResponse:
    limit, offset = paging(request, PAGE)
    filters = _filters(request)
    answer = await call(request, "GET", "/logs", query={**api_query(filters), "limit": limit, "offset": offset})
    if not answer.ok and answer.status == 400:
        return html(request, "logs.html", 400, title="Audit log", entries=[], total=0, limit=limit, offset=0,
                    filters=filters, pager_query=filters, processes=PROCESSES, error=answer.detail or answer.error,
                    error_id=answer.error)
    body = need(answer)
    return html(request, "logs.html", title="Audit log", entries=body["items"], total=body["total"], limit=limit,
                offset=offset, filters=filters, processes=PROCESSES,
                export_query=filters, pager_query=kept(request, filters, limit))


@routes.get("/logs/export.csv")
@page
async def logs_export(request: web.Request) -> web.StreamResponse:
    query: dict[str, Any] = {**api_query(_filters(request)), "format": "csv"}
    if "limit" in request.query or "offset" in request.query:
        limit, offset = paging(request, PAGE)
        query.update(limit=limit, offset=offset)
    result = await call(request, "GET", "/logs/export", query=query)
    need(result)  # a refusal is drawn as a page
    upstream = result.response
    assert isinstance(upstream, web.Response) and isinstance(upstream.body, bytes)
    return web.Response(
        body=upstream.body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": upstream.headers["Content-Disposition"]},
    )
