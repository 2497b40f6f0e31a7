"""Sites, their enrollment codes and firmware policy (SIT-1, SIT-3, EC-1, EC-4, EC-5, EC-6, FW-3).

Decisions (docs/portal.md, "Sites, codes, profiles, firmware"):
- `/sites` lists the sites of one customer account of the administrator's subtree, chosen with a
  selector (default: the acting account when it is a customer, else the first customer).
- The numeric enrollment code (NEC) appears only in the answer page of the POST that generated
  or regenerated it. `GET /sites/{id}/nec` answers the code too (the API's reader keeps it); the
  site page drops it before drawing, so reloading or linking never shows it again.
- The PEC (account ID + PIN, EC-6) is shown on the site page: it never expires and is derived
  from the account ID and the PIN the page shows anyway, so it is no secret shown once.
- A site whose profile entry has server type DES takes a basic-configuration zip (PRF-5): the
  site page lists the zip's files and uploads a new one (`PUT /sites/{id}/config`, the bytes as
  they came); the API's checks (size, names, zip bombs) decide and their sentence is shown.
- Form values the API checks (numbers, PIN, expiry) are passed on as typed when they are not
  plain digits, so the refusal is the API's own error id and sentence, shown next to the form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from server.api.sites import MAX_ZIP
from server.portal.calls import Result, call
from server.portal.render import ME, action, error_page, html, need, page, see_other

routes = web.RouteTableDef()

EXPIRY_UNITS = ("hours", "days", "weeks", "months")
FIXED_SETTINGS = ("same-as-account", "latest", "off")
ACCOUNTS_SHOWN = 500
PAGE = 50


def number(value: Any) -> Any:
    """A form field as an integer when it is plain ASCII digits, else as typed (the API refuses it)."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else text


def paging(request: web.Request) -> tuple[int, int]:
    def read(name: str, default: int, top: int) -> int:
        raw = request.query.get(name, "")
        return min(int(raw), top) if raw.isascii() and raw.isdigit() and len(raw) < 10 else default

    return max(read("limit", PAGE, 200), 1), read("offset", 0, 10**9)


def form_expiry(form: Any) -> dict[str, Any] | None:
    unit = str(form.get("expiry_unit", "") or "")
    if unit in ("", "never"):
        return None
    return {"unit": unit, "value": number(form.get("expiry_value", ""))}


def site_body(form: Any, *, create: bool) -> dict[str, Any]:
    """The site fields of a form: name, profile (empty: none), entry (empty: the API's default), PIN."""
    body: dict[str, Any] = {"name": str(form.get("name", "")).strip()}
    profile = str(form.get("profile_id", "") or "")
    body["profile_id"] = None if profile == "" else number(profile)
    entry = str(form.get("entry", "") or "").strip()
    if entry != "" and body["profile_id"] is not None:
        body["entry"] = number(entry)
    pin = str(form.get("pin", "") or "").strip()
    if pin or not create:
        body["pin"] = pin or None
    return body


async def _customers(request: web.Request) -> tuple[list[dict[str, Any]], int]:
    answer = need(await call(request, "GET", "/accounts", query={"type": "customer", "limit": ACCOUNTS_SHOWN}))
    return answer["items"], answer["total"]


async def _profiles(request: web.Request) -> list[dict[str, Any]]:
    if "profiles.read" not in request[ME]["actions"]:
        return []
    return list(need(await call(request, "GET", "/profiles", query={"limit": 1000}))["items"])


async def _list_page(request: web.Request, account_id: str | None, status: int = 200, **values: Any) -> web.Response:
    me = request[ME]
    customers, customer_total = await _customers(request)
    if not account_id:
        ids = [a["id"] for a in customers]
        account_id = me["acting_account_id"] if me["acting_account_id"] in ids else (ids[0] if ids else None)
    account = sites = None
    limit, offset = paging(request)
    if account_id:
        account = need(await call(request, "GET", "/accounts/{id}", params={"id": account_id}))
        if account["type"] == "customer":
            sites = need(
                await call(
                    request,
                    "GET",
                    "/accounts/{id}/sites",
                    params={"id": account_id},
                    query={"limit": limit, "offset": offset},
                )
            )
    return html(
        request,
        "sites.html",
        status,
        title="Sites & codes",
        customers=customers,
        customer_total=customer_total,
        account=account,
        sites=sites,
        profiles=await _profiles(request),
        limit=limit,
        offset=offset,
        query={"account": account_id} if account_id else {},
        **values,
    )


@routes.get("/sites")
@page
async def sites_list(request: web.Request) -> web.StreamResponse:
    notice = {"deleted": "The site was deleted.", "firmware": "The firmware-upgrade switch was saved."}
    return await _list_page(
        request, request.query.get("account") or None, notice=notice.get(request.query.get("done", ""))
    )


@routes.post("/sites")
@action
async def site_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    account_id = str(form.get("account_id", ""))
    body = site_body(form, create=True)
    answer = await call(request, "POST", "/accounts/{id}/sites", params={"id": account_id}, body=body)
    if not answer.ok:
        if answer.error == "account-not-found":
            return _refused(request, answer)
        return await _list_page(
            request, account_id, answer.status, error=answer.detail or answer.error, typed=dict(form)
        )
    return see_other(f"/sites/{answer.body['id']}?done=created")


@routes.post("/sites/firmware-upgrade")
@action
async def account_firmware_upgrade(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    account_id = str(form.get("account_id", ""))
    enabled = form.get("enabled") == "on"
    need(
        await call(
            request, "PUT", "/accounts/{id}/firmware-upgrade", params={"id": account_id}, body={"enabled": enabled}
        )
    )
    return see_other("/sites?" + urlencode({"account": account_id, "done": "firmware"}))


def _refused(request: web.Request, result: Result) -> web.Response:
    return error_page(request, result)


# One site ---------------------------------------------------------------------------------------


async def _site_page(request: web.Request, site_id: str, status: int = 200, **values: Any) -> web.Response:
    actions = set(request[ME]["actions"])
    site = need(await call(request, "GET", "/sites/{id}", params={"id": site_id}))
    nec = pec = None
    if "codes.read" in actions:
        answer = await call(request, "GET", "/sites/{id}/nec", params={"id": site_id})
        if answer.ok:
            # The API's reader answers the code as well; it is shown once, at generation only.
            nec = {k: v for k, v in answer.body.items() if k != "code"}
        elif answer.error != "no-nec":
            need(answer)
        if site["pin"] is not None:
            pec = need(await call(request, "GET", "/sites/{id}/pec", params={"id": site_id}))
    firmware = need(await call(request, "GET", "/sites/{id}/firmware", params={"id": site_id}))["items"]
    config = None
    if (site.get("provisioning") or {}).get("server_type") == "DES":
        answer = await call(request, "GET", "/sites/{id}/config", params={"id": site_id})
        config = answer.body if answer.ok else {"members": [], "size": 0, "missing": True}
    profiles = await _profiles(request) if "sites.write" in actions else []
    return html(
        request,
        "sites_detail.html",
        status,
        title=f"Site {site['name']}",
        site=site,
        nec=nec,
        pec=pec,
        firmware=firmware,
        config=config,
        fixed_settings=FIXED_SETTINGS,
        profiles=profiles,
        units=EXPIRY_UNITS,
        **values,
    )


SITE = r"/sites/{id:\d{1,12}}"


def _site_id(request: web.Request) -> str:
    return request.match_info["id"]


@routes.get(SITE)
@page
async def site_detail(request: web.Request) -> web.StreamResponse:
    notices = {
        "created": "The site was created.",
        "saved": "The site was saved.",
        "firmware": "The firmware setting was saved.",
        "code-saved": "The code's settings were saved.",
        "code-deleted": "The enrollment code was deleted.",
        "config": "The configuration zip was uploaded.",
    }
    return await _site_page(request, _site_id(request), notice=notices.get(request.query.get("done", "")))


@routes.post(SITE)
@action
async def site_update(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    site = need(await call(request, "GET", "/sites/{id}", params={"id": sid}))
    form = await request.post()
    body = site_body(form, create=False)
    # Only what changed: a customer may keep an ancestor's profile it cannot open itself (SIT-1),
    # and naming that profile again would be refused as not found.
    if body.get("profile_id") == site["profile_id"] and site["profile_id"] is not None:
        del body["profile_id"]
        if body.get("entry") == site["entry"]:
            del body["entry"]
    if body.get("pin", site["pin"]) == site["pin"]:
        body.pop("pin", None)
    answer = await call(request, "PATCH", "/sites/{id}", params={"id": sid}, body=body)
    if not answer.ok:
        if answer.error == "site-not-found":
            return _refused(request, answer)
        return await _site_page(request, sid, answer.status, site_error=answer.detail or answer.error, typed=dict(form))
    return see_other(f"/sites/{sid}?done=saved")


@routes.post(SITE + "/config")
@action
async def site_config_upload(request: web.Request) -> web.StreamResponse:
    """PRF-5: a new basic-configuration zip for a DES site."""
    sid = _site_id(request)
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _site_page(request, sid, 422, config_error="Choose a zip file to upload.")
    data = upload.file.read(MAX_ZIP + 1)
    if len(data) > MAX_ZIP:
        return await _site_page(request, sid, 413, config_error=f"The file is larger than {MAX_ZIP >> 20} MiB.")
    answer = await call(request, "PUT", "/sites/{id}/config", params={"id": sid}, data=data,
                        content_type="application/zip")
    if not answer.ok:
        if answer.status in (401, 403, 404) and answer.error != "no-config":
            return _refused(request, answer)
        detail = answer.detail or "The zip was refused."
        return await _site_page(request, sid, answer.status, config_error=f"{detail} ({answer.error})")
    return see_other(f"/sites/{sid}?done=config")


@routes.get(SITE + "/delete")
@page
async def site_delete_confirm(request: web.Request) -> web.StreamResponse:
    site = need(await call(request, "GET", "/sites/{id}", params={"id": _site_id(request)}))
    return html(request, "sites_delete.html", title=f"Delete site {site['name']}", site=site)


@routes.post(SITE + "/delete")
@action
async def site_delete(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    site = need(await call(request, "GET", "/sites/{id}", params={"id": sid}))
    answer = await call(request, "DELETE", "/sites/{id}", params={"id": sid})
    if not answer.ok:
        if answer.status == 404:
            return _refused(request, answer)
        return html(
            request,
            "sites_delete.html",
            answer.status,
            title=f"Delete site {site['name']}",
            site=site,
            error=answer.detail or answer.error,
        )
    return see_other("/sites?" + urlencode({"account": site["account_id"], "done": "deleted"}))


@routes.post(SITE + "/firmware")
@action
async def site_firmware(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    form = await request.post()
    model, setting = str(form.get("model", "")), str(form.get("setting", ""))
    answer = await call(
        request, "PUT", "/sites/{id}/firmware/{model}", params={"id": sid, "model": model}, body={"setting": setting}
    )
    if not answer.ok:
        if answer.status == 404 and answer.error == "site-not-found":
            return _refused(request, answer)
        return await _site_page(request, sid, answer.status, firmware_error=f"{model}: {answer.detail or answer.error}")
    return see_other(f"/sites/{sid}?done=firmware#firmware")


# Enrollment codes (EC-1, EC-4, EC-5) -------------------------------------------------------------


def _shown_once(
    request: web.Request, site: dict[str, Any], nec: dict[str, Any], status: int, regenerated: bool
) -> web.Response:
    """The answer page of the POST that made the code: the only page that ever shows it."""
    return html(
        request, "codes_shown.html", status, title="Enrollment code", site=site, nec=nec, regenerated=regenerated
    )


@routes.post(SITE + "/codes")
@action
async def code_generate(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    form = await request.post()
    body: dict[str, Any] = {
        "length": number(form.get("length", "8")),
        "total_devices": number(form.get("total_devices", "")),
        "expiry": form_expiry(form),
    }
    answer = await call(request, "POST", "/sites/{id}/nec", params={"id": sid}, body=body)
    if not answer.ok:
        if answer.status == 404:
            return _refused(request, answer)
        return await _site_page(request, sid, answer.status, code_error=answer.detail or answer.error, typed=dict(form))
    site = need(await call(request, "GET", "/sites/{id}", params={"id": sid}))
    return _shown_once(request, site, answer.body, 201, regenerated=False)


@routes.post(SITE + "/codes/regenerate")
@action
async def code_regenerate(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    form = await request.post()
    length = str(form.get("length", "") or "")
    body = {"length": number(length)} if length else {}
    answer = await call(request, "POST", "/sites/{id}/nec/regenerate", params={"id": sid}, body=body)
    if not answer.ok:
        if answer.status == 404 and answer.error != "no-nec":
            return _refused(request, answer)
        return await _site_page(request, sid, answer.status, code_error=answer.detail or answer.error)
    site = need(await call(request, "GET", "/sites/{id}", params={"id": sid}))
    return _shown_once(request, site, answer.body, 200, regenerated=True)


@routes.post(SITE + "/codes/settings")
@action
async def code_settings(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    form = await request.post()
    current = await call(request, "GET", "/sites/{id}/nec", params={"id": sid})
    if not current.ok:
        if current.status == 404 and current.error != "no-nec":
            return _refused(request, current)
        return await _site_page(request, sid, current.status, code_error=current.detail or current.error)
    body: dict[str, Any] = {}
    total = number(form.get("total_devices", ""))
    if total != current.body["total_devices"]:
        body["total_devices"] = total
    expiry = form_expiry(form)
    if expiry != current.body["expiry"]:  # a new expiry restarts the clock (EC-4): only when it changed
        body["expiry"] = expiry
    if not body:
        return see_other(f"/sites/{sid}?done=code-saved")
    answer = await call(request, "PATCH", "/sites/{id}/nec", params={"id": sid}, body=body)
    if not answer.ok:
        return await _site_page(request, sid, answer.status, code_error=answer.detail or answer.error, typed=dict(form))
    return see_other(f"/sites/{sid}?done=code-saved")


@routes.get(SITE + "/codes/delete")
@page
async def code_delete_confirm(request: web.Request) -> web.StreamResponse:
    site = need(await call(request, "GET", "/sites/{id}", params={"id": _site_id(request)}))
    return html(request, "codes_delete.html", title="Delete the enrollment code", site=site)


@routes.post(SITE + "/codes/delete")
@action
async def code_delete(request: web.Request) -> web.StreamResponse:
    sid = _site_id(request)
    answer = await call(request, "DELETE", "/sites/{id}/nec", params={"id": sid})
    if not answer.ok:
        if answer.status == 404 and answer.error != "no-nec":
            return _refused(request, answer)
        return await _site_page(request, sid, answer.status, code_error=answer.detail or answer.error)
    return see_other(f"/sites/{sid}?done=code-deleted")
