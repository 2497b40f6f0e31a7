"""Profiles: the provisioning entries sites send their devices to (PRF-1, PRF-2, PRF-3, PRF-6).

Decisions (docs/portal.md, "Sites, codes, profiles, firmware"):
- The form has a fixed number of entry rows (three for a new profile, the entries plus two when
  editing, at most 20); a row without a URL is left out.
- URLs come back from the API with their password redacted (`****`, LOG-1) and the API keeps the
  stored password when such a URL is sent back unchanged at the same index. A row whose URL
  holds `****` may therefore not move to another index (an entry above it removed): the page
  refuses that before calling the API, since the redacted text would otherwise be stored.
- PRF-6 wildcard-certificate warnings are drawn on the answer page of the create/update instead
  of a redirect, so they are seen.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.portal.calls import call
from server.portal.render import action, error_page, html, need, page, see_other
from server.portal.sites_pages import number, paging

routes = web.RouteTableDef()

SERVER_TYPES = ("HTTP(S)", "HTTPS", "HTTP", "DES")
NEW_ROWS = 3
MAX_ENTRIES = 20
REDACTED = "****"
PROFILE = r"/profiles/{id:\d{1,12}}"


def _rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    count = min(max(len(entries) + 2, NEW_ROWS), MAX_ENTRIES)
    return [{**e, "was": i} for i, e in enumerate(entries)] + [{} for _ in range(count - len(entries))]


def _typed_rows(form: Any) -> list[dict[str, Any]]:
    rows = []
    for i in range(MAX_ENTRIES):
        if f"entry-{i}-url" not in form:
            break
        was = str(form.get(f"entry-{i}-was", ""))
        rows.append(
            {
                "server_type": str(form.get(f"entry-{i}-server_type", "HTTP(S)")),
                "url": str(form.get(f"entry-{i}-url", "")).strip(),
                "identity_certificates": form.get(f"entry-{i}-identity") == "on",
                "group": str(form.get(f"entry-{i}-group", "0")).strip(),
                "root_ca_pem": str(form.get(f"entry-{i}-root_ca_pem", "")).strip(),
                "was": int(was) if was.isascii() and was.isdigit() and len(was) < 4 else None,
            }
        )
    return rows


def _entries(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The API's entries from the form rows, or a sentence why the form cannot be sent."""
    entries: list[dict[str, Any]] = []
    for row in rows:
        if not row["url"]:
            continue
        if REDACTED in row["url"] and row["was"] is not None and row["was"] != len(entries):
            return [], (
                f"The entry with URL {row['url']} would move from position {row['was']} to {len(entries)}: "
                "its password is not shown, so type the whole URL again (or keep the entries above it)."
            )
        entry: dict[str, Any] = {
            "server_type": row["server_type"],
            "url": row["url"],
            "identity_certificates": row["identity_certificates"],
            "group": number(row["group"] or "0"),
        }
        if row["root_ca_pem"]:
            entry["root_ca_pem"] = row["root_ca_pem"]
        entries.append(entry)
    return entries, None


def _form(
    request: web.Request, status: int, profile: dict[str, Any] | None, rows: list[dict[str, Any]], **values: Any
) -> web.Response:
    title = f"Profile {profile['name']}" if profile else "New profile"
    return html(
        request,
        "profiles_edit.html",
        status,
        title=title,
        profile=profile,
        rows=rows,
        server_types=SERVER_TYPES,
        **values,
    )


@routes.get("/profiles")
@page
async def profiles_list(request: web.Request) -> web.StreamResponse:
    limit, offset = paging(request)
    profiles = need(await call(request, "GET", "/profiles", query={"limit": limit, "offset": offset}))
    notice = "The profile was deleted." if request.query.get("done") == "deleted" else None
    return html(
        request, "profiles.html", title="Profiles", profiles=profiles, limit=limit, offset=offset, notice=notice
    )


@routes.get("/profiles/new")
@page
async def profile_new(request: web.Request) -> web.StreamResponse:
    return _form(request, 200, None, _rows([]))


@routes.post("/profiles/new")
@action
async def profile_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    rows = _typed_rows(form)
    entries, problem = _entries(rows)
    if problem:
        return _form(request, 400, None, rows, error=problem, name=name)
    answer = await call(request, "POST", "/profiles", body={"name": name, "entries": entries})
    if not answer.ok:
        return _form(request, answer.status, None, rows, error=answer.detail or answer.error, name=name)
    if answer.body.get("warnings"):
        return _form(
            request,
            201,
            answer.body,
            _rows(answer.body["entries"]),
            warnings=answer.body["warnings"],
            notice="The profile was created.",
        )
    return see_other(f"/profiles/{answer.body['id']}?done=created")


@routes.get(PROFILE)
@page
async def profile_detail(request: web.Request) -> web.StreamResponse:
    profile = need(await call(request, "GET", "/profiles/{id}", params={"id": request.match_info["id"]}))
    notice = {"created": "The profile was created.", "saved": "The profile was saved."}.get(
        request.query.get("done", "")
    )
    return _form(request, 200, profile, _rows(profile["entries"]), notice=notice)


@routes.post(PROFILE)
@action
async def profile_update(request: web.Request) -> web.StreamResponse:
    pid = request.match_info["id"]
    profile = need(await call(request, "GET", "/profiles/{id}", params={"id": pid}))
    form = await request.post()
    name = str(form.get("name", "")).strip()
    rows = _typed_rows(form)
    entries, problem = _entries(rows)
    if problem:
        return _form(request, 400, profile, rows, error=problem, name=name)
    answer = await call(request, "PATCH", "/profiles/{id}", params={"id": pid}, body={"name": name, "entries": entries})
    if not answer.ok:
        return _form(request, answer.status, profile, rows, error=answer.detail or answer.error, name=name)
    if answer.body.get("warnings"):
        return _form(
            request,
            200,
            answer.body,
            _rows(answer.body["entries"]),
            warnings=answer.body["warnings"],
            notice="The profile was saved.",
        )
    return see_other(f"/profiles/{pid}?done=saved")


@routes.get(PROFILE + "/delete")
@page
async def profile_delete_confirm(request: web.Request) -> web.StreamResponse:
    profile = need(await call(request, "GET", "/profiles/{id}", params={"id": request.match_info["id"]}))
    return html(request, "profiles_delete.html", title=f"Delete profile {profile['name']}", profile=profile)


@routes.post(PROFILE + "/delete")
@action
async def profile_delete(request: web.Request) -> web.StreamResponse:
    pid = request.match_info["id"]
    profile = need(await call(request, "GET", "/profiles/{id}", params={"id": pid}))
    answer = await call(request, "DELETE", "/profiles/{id}", params={"id": pid})
    if not answer.ok:
        if answer.status == 404:
            return error_page(request, answer)
        return html(
            request,
            "profiles_delete.html",
            answer.status,
            title=f"Delete profile {profile['name']}",
            profile=profile,
            error=answer.detail or answer.error,
        )
    return see_other("/profiles?done=deleted")
