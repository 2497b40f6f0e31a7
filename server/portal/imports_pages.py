"""Device import (DEV-1): a file upload form — CSV, JSON or a ZIP of those, as `POST
/devices/import` takes them — for the roles that may import (the platform, manufacturers). The
answer is the import job's page, whose results are the per-row error report: each rejected
row's number, field and reason.

The file's bytes go to the API as they came (`data=`), with a content type from the file's name
(browsers label .csv files in many ways) and the name as the `filename` query, so the API
decides the format exactly as for `curl`."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from aiohttp import web

from server.domain import imports
from server.portal.calls import call
from server.portal.render import ME, action, error_page, html, page, see_other

routes = web.RouteTableDef()

TYPES = {".csv": "text/csv", ".json": "application/json", ".zip": "application/zip"}
ACCEPT = ".csv,.json,.zip,text/csv,application/json,application/zip"


def _allowed(request: web.Request) -> web.Response | None:
    me = request[ME]
    if "devices.import" in me["actions"]:
        return None
    return html(request, "error.html", 403, title="Not allowed", error="forbidden-role",
                detail=f"A {me['role'].replace('_', ' ')} administrator cannot import devices.")


def _form(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    return html(request, "import.html", status, title="Import devices", accept=ACCEPT,
                max_mib=imports.MAX_BYTES >> 20, **values)


@routes.get("/devices/import")
@page
async def import_form(request: web.Request) -> web.StreamResponse:
    return _allowed(request) or _form(request)


def _filename(raw: Any) -> str:
    """The file's own name, without any folder a browser may send."""
    name = raw if isinstance(raw, str) else ""
    name = PureWindowsPath(PurePosixPath(name).name).name
    return "".join(c for c in name if c.isprintable())[:200]


def _content_type(filename: str, sent: str) -> str:
    by_name = TYPES.get(PurePosixPath(filename.lower()).suffix)
    return by_name or (sent if sent else "application/octet-stream")


@routes.post("/devices/import")
@action
async def import_upload(request: web.Request) -> web.StreamResponse:
    # No early refusal for roles that may not import: the API call is the check (403, nothing stored).
    form = await request.post()
    name = form.get("name", "")
    name = name.strip()[:128] if isinstance(name, str) else ""
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return _form(request, 422, error="Choose a file to import.", name=name)
    filename = _filename(upload.filename)
    data = upload.file.read(imports.MAX_BYTES + 1)
    if len(data) > imports.MAX_BYTES:
        return _form(request, 413, error=f"The file is larger than {imports.MAX_BYTES >> 20} MiB: split it.",
                     name=name)
    media = _content_type(filename, (upload.content_type or "").partition(";")[0].strip().lower())
    result = await call(request, "POST", "/devices/import", query={"filename": filename, "name": name},
                        data=data, content_type=media)
    if not result.ok:
        if result.status in (401, 403, 404):
            return error_page(request, result)
        detail = result.detail or "The file was refused."
        return _form(request, result.status, error=f"{detail} ({result.error})" if result.error else detail,
                     name=name)
    return see_other(f"/jobs/{int(result.body['id'])}")
