"""Accounts of the administrator's subtree (ACC-1..10, DEV-3 claim policy), linking requests
(ACC-8) and the "switch to this account" button (ACC-9).

Decisions (docs/portal.md, "Accounts, administrators, audit log, notifications"):
- `/accounts` draws `GET /accounts` (ordered by path) as a tree: an account is indented under its
  parent when the parent is on the same page. Every account type is offered in the create form;
  which type the acting account may create is the API's answer (ACC-1, ACC-2), drawn next to the
  form with what was typed.
- Contact and address are free `key: value` objects in the API; the page edits the usual keys and
  keeps any other key an API caller set.
- "Switch to this account" appears on reseller accounts when the role may switch (ACC-9); whether
  the platform approved it, and whether the reseller is in the subtree, is the API's check.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from server.portal.calls import Result, call
from server.portal.render import ME, action, error_page, html, need, page, see_other

routes = web.RouteTableDef()

PAGE = 50
TYPES = (
    ("customer", "Customer"),
    ("reseller", "Reseller"),
    ("service_provider", "Service provider"),
    ("manufacturer", "Manufacturer"),
)
CONTACT_KEYS = (("name", "Contact name"), ("email", "Contact e-mail"), ("phone", "Contact phone"))
ADDRESS_KEYS = (("street", "Street"), ("city", "City"), ("postal_code", "Postal code"), ("country", "Country"))
NOTICES = {
    "created": "The account was created.",
    "saved": "The account was saved.",
    "enabled": "The account was enabled.",
    "disabled": "The account was disabled: its administrators cannot sign in, its profiles and devices "
                "were dissociated.",
    "two-factor": "The two-factor setting was saved.",
    "switch": "The switch-account approval was saved.",
    "claim-policy": "The claim policy was saved.",
    "requested": "The linking request was sent.",
    "approved": "The linking request was approved.",
    "rejected": "The linking request was rejected.",
}


def paging(request: web.Request, default: int = PAGE) -> tuple[int, int]:
    def read(name: str, fallback: int, top: int) -> int:
        raw = request.query.get(name, "")
        return min(int(raw), top) if raw.isascii() and raw.isdigit() and len(raw) < 10 else fallback

    return max(read("limit", default, 200), 1), read("offset", 0, 10**9)


def kept(request: web.Request, query: dict[str, Any], limit: int) -> dict[str, Any]:
    """A list's query for its pager links: the filters, and the page size when one was asked for."""
    return {**query, "limit": limit} if "limit" in request.query else dict(query)


def _tree(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Accounts (ordered by path) with their depth below the first account of the page's subtree."""
    depth: dict[str, int] = {}
    rows = []
    for acc in items:
        d = depth[acc["parent_id"]] + 1 if acc["parent_id"] in depth else 0
        depth[acc["id"]] = d
        rows.append((acc, min(d, 8)))
    return rows


def _text(form: Any, name: str) -> str:
    return str(form.get(name, "") or "").strip()


# The subtree ------------------------------------------------------------------------------------


async def _list_page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    limit, offset = paging(request)
    query = {k: request.query[k] for k in ("type", "name") if request.query.get(k)}
    answer = need(await call(request, "GET", "/accounts", query={**query, "limit": limit, "offset": offset}))
    return html(request, "accounts.html", status, title="Accounts", rows=_tree(answer["items"]),
                total=answer["total"], limit=limit, offset=offset, query=kept(request, query, limit), types=TYPES,
                **values)


@routes.get("/accounts")
@page
async def accounts_list(request: web.Request) -> web.StreamResponse:
    deleted, returned = request.query.get("deleted", ""), request.query.get("returned", "")
    notice = None
    if deleted.isascii() and deleted.isdigit() and returned.isascii() and returned.isdigit():
        notice = f"{deleted} account(s) deleted; {returned} device(s) returned to the accounts that held them before."
    return await _list_page(request, notice=notice)


@routes.post("/accounts")
@action
async def account_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body: dict[str, Any] = {"type": _text(form, "type"), "name": _text(form, "name")}
    for key in ("bp_link_id", "sap_id"):
        if _text(form, key):
            body[key] = _text(form, key)
    answer = await call(request, "POST", "/accounts", body=body)
    if answer.error == "forbidden-role":  # no form to draw it next to: the role creates no accounts
        return error_page(request, answer)
    if not answer.ok:
        return await _list_page(request, answer.status, error=answer.detail or answer.error,
                                error_id=answer.error, typed=dict(form))
    return see_other(f"/accounts/{answer.body['id']}?done=created")


# One account ------------------------------------------------------------------------------------


async def _account_page(request: web.Request, account_id: str, status: int = 200, **values: Any) -> web.Response:
    actions = set(request[ME]["actions"])
    account = need(await call(request, "GET", "/accounts/{id}", params={"id": account_id}))
    policy = need(await call(request, "GET", "/accounts/{id}/claim-policy", params={"id": account_id}))
    parent = None
    if account["parent_id"]:
        found = await call(request, "GET", "/accounts/{id}", params={"id": account["parent_id"]})
        parent = found.body if found.ok else None  # above the subtree: named by id only
    users = None
    if "users.read" in actions:
        users = need(await call(request, "GET", "/users", query={"account_id": account_id, "limit": 50}))
    return html(request, "accounts_detail.html", status, title=f"Account {account['name']}", account=account,
                parent=parent, policy=policy, users=users, contact_keys=CONTACT_KEYS, address_keys=ADDRESS_KEYS,
                own=account["id"] == request[ME]["acting_account_id"],
                notice=NOTICES.get(request.query.get("done", "")), **values)


@routes.get("/accounts/{id}")
@page
async def account_detail(request: web.Request) -> web.StreamResponse:
    return await _account_page(request, request.match_info["id"])


def _merged(current: Any, form: Any, prefix: str, keys: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """An object field edited by the form's keys; keys the form does not show are kept."""
    merged = dict(current or {})
    for key, _ in keys:
        value = _text(form, f"{prefix}_{key}")
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    return merged


async def _refused_on_page(request: web.Request, account_id: str, answer: Result, section: str,
                           **values: Any) -> web.Response:
    if answer.status in (401, 404) or answer.error == "forbidden-role":
        return error_page(request, answer)
    return await _account_page(request, account_id, answer.status,
                               errors={section: answer.detail or answer.error}, error_ids={section: answer.error},
                               **values)


@routes.post("/accounts/{id}")
@action
async def account_update(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["id"]
    form = await request.post()
    current = need(await call(request, "GET", "/accounts/{id}", params={"id": account_id}))
    body: dict[str, Any] = {
        "name": _text(form, "name"),
        "bp_link_id": _text(form, "bp_link_id") or None,
        "sap_id": _text(form, "sap_id") or None,
    }
    for key, keys in (("contact", CONTACT_KEYS), ("address", ADDRESS_KEYS)):
        merged = _merged(current[key], form, key, keys)
        if merged or current[key]:  # an object in the API (never null): emptied, not dropped
            body[key] = merged
    answer = await call(request, "PATCH", "/accounts/{id}", params={"id": account_id}, body=body)
    if not answer.ok:
        return await _refused_on_page(request, account_id, answer, "edit", typed=dict(form))
    return see_other(f"/accounts/{account_id}?done=saved")


@routes.post("/accounts/{id}/enable")
@action
async def account_enable(request: web.Request) -> web.StreamResponse:
    return await _enabled(request, "enable")


@routes.post("/accounts/{id}/disable")
@action
async def account_disable(request: web.Request) -> web.StreamResponse:
    return await _enabled(request, "disable")


async def _enabled(request: web.Request, verb: str) -> web.StreamResponse:
    account_id = request.match_info["id"]
    answer = await call(request, "POST", f"/accounts/{{id}}/{verb}", params={"id": account_id})
    if not answer.ok:
        return await _refused_on_page(request, account_id, answer, "state")
    return see_other(f"/accounts/{account_id}?done={verb}d")


@routes.post("/accounts/{id}/two-factor")
@action
async def account_two_factor(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["id"]
    form = await request.post()
    body: dict[str, Any] = {"enabled": form.get("enabled") == "on"}
    if form.get("children_shown") == "1":
        body["for_children"] = form.get("for_children") == "on"
    answer = await call(request, "PUT", "/accounts/{id}/two-factor", params={"id": account_id}, body=body)
    if not answer.ok:
        return await _refused_on_page(request, account_id, answer, "two-factor")
    return see_other(f"/accounts/{account_id}?done=two-factor")


@routes.post("/accounts/{id}/switch-approval")
@action
async def account_switch_approval(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["id"]
    form = await request.post()
    answer = await call(request, "POST", "/accounts/{id}/switch-approval", params={"id": account_id},
                        body={"enabled": form.get("enabled") == "on"})
    if not answer.ok:
        return await _refused_on_page(request, account_id, answer, "switch")
    return see_other(f"/accounts/{account_id}?done=switch")


@routes.post("/accounts/{id}/claim-policy")
@action
async def account_claim_policy(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["id"]
    form = await request.post()
    answer = await call(request, "PUT", "/accounts/{id}/claim-policy", params={"id": account_id},
                        body={"label_code_required": form.get("label_code_required") == "on"})
    if not answer.ok:
        return await _refused_on_page(request, account_id, answer, "claim-policy")
    return see_other(f"/accounts/{account_id}?done=claim-policy")


@routes.get("/accounts/{id}/delete")
@page
async def account_delete_confirm(request: web.Request) -> web.StreamResponse:
    account = need(await call(request, "GET", "/accounts/{id}", params={"id": request.match_info["id"]}))
    return html(request, "accounts_delete.html", title=f"Delete account {account['name']}", account=account)


@routes.post("/accounts/{id}/delete")
@action
async def account_delete(request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["id"]
    answer = await call(request, "DELETE", "/accounts/{id}", params={"id": account_id})
    if not answer.ok:
        if answer.status in (401, 404) or answer.error == "forbidden-role":
            return error_page(request, answer)
        account = need(await call(request, "GET", "/accounts/{id}", params={"id": account_id}))
        return html(request, "accounts_delete.html", answer.status, title=f"Delete account {account['name']}",
                    account=account, error=answer.detail or answer.error, error_id=answer.error)
    body = answer.body
    return see_other("/accounts?" + urlencode({"deleted": len(body["deleted"]), "returned": body["devices_returned"]}))


# Linking requests (ACC-8) -----------------------------------------------------------------------


async def _links_page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    limit, offset = paging(request)
    query = {"status": request.query["status"]} if request.query.get("status") else {}
    answer = need(await call(request, "GET", "/link-requests", query={**query, "limit": limit, "offset": offset}))
    return html(request, "accounts_links.html", status, title="Account links", links=answer["items"],
                total=answer["total"], limit=limit, offset=offset, query=kept(request, query, limit),
                notice=NOTICES.get(request.query.get("done", "")), **values)


@routes.get("/links")
@page
async def links_list(request: web.Request) -> web.StreamResponse:
    return await _links_page(request)


@routes.post("/links")
@action
async def link_request(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    bp = _text(form, "bp_link_id")
    answer = await call(request, "POST", "/link-requests", body={"bp_link_id": bp})
    if not answer.ok:
        return await _links_page(request, answer.status, error=answer.detail or answer.error, error_id=answer.error,
                                 typed={"bp_link_id": bp})
    return see_other("/links?done=requested")


async def _decide(request: web.Request, verb: str) -> web.StreamResponse:
    answer = await call(request, "POST", f"/link-requests/{{id}}/{verb}", params={"id": request.match_info["id"]})
    if not answer.ok:
        if answer.status in (401, 404):
            return error_page(request, answer)
        return await _links_page(request, answer.status, error=answer.detail or answer.error, error_id=answer.error)
    return see_other("/links?" + urlencode({"done": f"{verb}d"}))


@routes.post("/links/{id}/approve")
@action
async def link_approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "approve")


@routes.post("/links/{id}/reject")
@action
async def link_reject(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "reject")
