"""Administrators of the subtree (USR-1): list, add, edit, delete.

Decisions (docs/portal.md, "Accounts, administrators, audit log, notifications"):
- The password typed when adding an administrator, or set again on its page, is temporary
  (USR-1): the API marks it so and the new administrator is sent to /password at first sign-in.
  No page ever draws a password or a hash; a refused form is drawn again with what was typed
  except the password.
- One's own password is changed at /password (with the old one), not on one's administrator page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.portal.accounts_pages import kept, paging
from server.portal.calls import Result, call
from server.portal.render import ME, action, error_page, html, need, page, see_other

routes = web.RouteTableDef()

ACCOUNTS_SHOWN = 500
FIELDS = ("email", "first_name", "last_name", "locale")
NOTICES = {
    "created": "The administrator was added. Its password is temporary: it must choose its own at first sign-in.",
    "saved": "The administrator was saved.",
    "password": "The password was set. It is temporary: the administrator must choose its own at its next sign-in.",
    "deleted": "The administrator was deleted.",
}


def _typed(form: Any) -> dict[str, str]:
    """What was typed, without any password."""
    return {k: str(v) for k, v in form.items() if "password" not in k and k != "csrf"}


async def _list_page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    limit, offset = paging(request)
    query = {"account_id": request.query["account"]} if request.query.get("account") else {}
    users = need(await call(request, "GET", "/users", query={**query, "limit": limit, "offset": offset}))
    accounts = need(await call(request, "GET", "/accounts", query={"limit": ACCOUNTS_SHOWN}))
    chosen = request.query.get("account") or request[ME]["acting_account_id"]
    return html(request, "users.html", status, title="Administrators", users=users["items"], total=users["total"],
                accounts=accounts["items"], names={a["id"]: a["name"] for a in accounts["items"]}, chosen=chosen,
                limit=limit, offset=offset,
                query=kept(request, {"account": query["account_id"]} if query else {}, limit),
                notice=NOTICES.get(request.query.get("done", "")), **values)


@routes.get("/users")
@page
async def users_list(request: web.Request) -> web.StreamResponse:
    return await _list_page(request)


@routes.post("/users")
@action
async def user_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body: dict[str, Any] = {
        "account_id": str(form.get("account_id", "")),
        "login": str(form.get("login", "")).strip(),
        "password": str(form.get("password", "")),
        "email": str(form.get("email", "")).strip(),
    }
    for key in ("first_name", "last_name", "locale"):
        if str(form.get(key, "")).strip():
            body[key] = str(form.get(key, "")).strip()
    answer = await call(request, "POST", "/users", body=body)
    if not answer.ok:
        return await _list_page(request, answer.status, error=answer.detail or answer.error, error_id=answer.error,
                                typed=_typed(form))
    return see_other(f"/users/{answer.body['id']}?done=created")


# One administrator ------------------------------------------------------------------------------


async def _user_page(request: web.Request, user_id: str, status: int = 200, template: str = "users_detail.html",
                     **values: Any) -> web.Response:
    user = need(await call(request, "GET", "/users/{id}", params={"id": user_id}))
    account = await call(request, "GET", "/accounts/{id}", params={"id": user["account_id"]})
    return html(request, template, status, title=f"Administrator {user['login']}", user=user,
                account=account.body if account.ok else None, own=user["id"] == request[ME]["user_id"],
                notice=NOTICES.get(request.query.get("done", "")), **values)


@routes.get("/users/{id}")
@page
async def user_detail(request: web.Request) -> web.StreamResponse:
    return await _user_page(request, request.match_info["id"])


def _refused(answer: Result) -> bool:
    """A refusal drawn as its own page (gone, or outside the subtree), not next to the form."""
    return answer.status in (401, 404)


@routes.post("/users/{id}")
@action
async def user_update(request: web.Request) -> web.StreamResponse:
    user_id = request.match_info["id"]
    form = await request.post()
    body = {key: str(form.get(key, "")).strip() for key in FIELDS if key in form}
    answer = await call(request, "PATCH", "/users/{id}", params={"id": user_id}, body=body)
    if not answer.ok:
        if _refused(answer):
            return error_page(request, answer)
        return await _user_page(request, user_id, answer.status, errors={"edit": answer.detail or answer.error},
                                error_ids={"edit": answer.error}, typed=_typed(form))
    return see_other(f"/users/{user_id}?done=saved")


@routes.post("/users/{id}/password")
@action
async def user_password(request: web.Request) -> web.StreamResponse:
    user_id = request.match_info["id"]
    form = await request.post()
    new, again = str(form.get("password", "")), str(form.get("password_again", ""))
    if new != again:
        return await _user_page(request, user_id, 400, errors={"password": "The two passwords differ."})
    answer = await call(request, "PATCH", "/users/{id}", params={"id": user_id}, body={"password": new})
    if not answer.ok:
        if _refused(answer):
            return error_page(request, answer)
        return await _user_page(request, user_id, answer.status,
                                errors={"password": answer.detail or answer.error},
                                error_ids={"password": answer.error})
    return see_other(f"/users/{user_id}?done=password")


@routes.get("/users/{id}/delete")
@page
async def user_delete_confirm(request: web.Request) -> web.StreamResponse:
    return await _user_page(request, request.match_info["id"], template="users_delete.html")


@routes.post("/users/{id}/delete")
@action
async def user_delete(request: web.Request) -> web.StreamResponse:
    user_id = request.match_info["id"]
    answer = await call(request, "DELETE", "/users/{id}", params={"id": user_id})
    if not answer.ok:
        if _refused(answer):
            return error_page(request, answer)
        return await _user_page(request, user_id, answer.status, template="users_delete.html",
                                error=answer.detail or answer.error, error_id=answer.error)
    return see_other("/users?done=deleted")
