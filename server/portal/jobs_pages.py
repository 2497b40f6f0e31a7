"""Jobs (DEV-9, DEV-10, DEV-12): the list, one job with live progress and its per-device (or
per-row) results, the export, and bulk device actions started from a form as jobs.

Every read and change is an admin API call (`GET /jobs`, `GET /jobs/{id}`, `GET
/jobs/{id}/export`, `POST /jobs`, `POST /devices/approve`): the API decides who may do what.
The form offers the action sets the domain rules allow the role (`action_sets_for`), and, for
the platform, approval (DEV-2: a direct call, not a job — its per-device results are the
answer page). A claim job names each device with its proof (DEV-3): one `MAC,serial` (or
`MAC,serial,label code`) per line; the serials are sent to the API and never drawn again.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from server.domain import devices as rules
from server.portal.calls import call
from server.portal.render import ME, Refused, error_page, html, need, page, see_other
from server.portal.render import action as form_action

routes = web.RouteTableDef()

STATUSES = ("IN PROGRESS", "COMPLETE", "FAIL")
RESULT_STATUSES = ("SUCCESS", "FAIL")
KINDS = (("devices", "Device actions"), ("import", "Imports"))
LIST_LIMIT = 50
RESULT_LIMIT = 100
APPROVE = "approve"
MAX_SELECTION_FILE = 10 << 20  # as POST /jobs/upload takes
_MAC = re.compile(r"^[0-9A-F]{12}$")
_SEP = re.compile(r"[,;\t ]+")


def _paging(request: web.Request, default: int) -> tuple[int, int]:
    """limit/offset from the query string; what is not a small number falls back to the default."""
    def number(name: str, fallback: int, low: int, high: int) -> int:
        raw = request.query.get(name, "")
        return int(raw) if raw.isascii() and raw.isdigit() and low <= int(raw) <= high else fallback

    return number("limit", default, 1, 1000), number("offset", 0, 0, 10_000_000)


def _actions_of(job: dict[str, Any]) -> str:
    acts = job.get("actions") or []
    return ", ".join(acts) if isinstance(acts, list) else str(acts)


def _progress(job: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a job's counts: done/total and the successes and failures, or an
    import's imported and rejected rows."""
    summary = job.get("summary") or {}
    if job.get("kind") == "import":
        return {"import": True, "imported": summary.get("imported", 0), "rejected": summary.get("rejected", 0),
                "errors": summary.get("errors", 0)}
    total = int(summary.get("total") or 0)
    done = min(int(summary.get("done") or 0), total) if total else int(summary.get("done") or 0)
    return {"import": False, "total": total, "done": done, "succeeded": summary.get("succeeded", 0),
            "failed": summary.get("failed", 0)}


# --- the list -------------------------------------------------------------------------------------


@routes.get("/jobs")
@page
async def jobs_list(request: web.Request) -> web.StreamResponse:
    limit, offset = _paging(request, LIST_LIMIT)
    status = request.query.get("status", "").upper()
    kind = request.query.get("kind", "")
    name = request.query.get("name", "").strip()[:128]
    filters = {"status": status if status in STATUSES else "", "kind": kind if kind in dict(KINDS) else "",
               "name": name}
    query = {k: v for k, v in filters.items() if v}
    answer = need(await call(request, "GET", "/jobs", query={**query, "limit": limit, "offset": offset}))
    jobs = [{**j, "actions_text": _actions_of(j), "progress": _progress(j)} for j in answer["items"]]
    actions = set(request[ME]["actions"])
    return html(request, "jobs.html", title="Jobs", jobs=jobs, total=answer["total"], filters=filters,
                query=dict(query, limit=limit), limit=limit, offset=offset, statuses=STATUSES, kinds=KINDS,
                may_start="jobs.create" in actions or "devices.approve" in actions)


# --- one job ----------------------------------------------------------------------------------------


@routes.get(r"/jobs/{id:\d{1,12}}")
@page
async def job_detail(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["id"]
    limit, offset = _paging(request, RESULT_LIMIT)
    status = request.query.get("status", "").upper()
    subject = request.query.get("subject", "").strip()[:64]
    filters = {"status": status if status in RESULT_STATUSES else "", "subject": subject}
    query = {k: v for k, v in filters.items() if v}
    job = need(await call(request, "GET", "/jobs/{id}", params={"id": job_id},
                          query={**query, "limit": limit, "offset": offset}))
    results = [{**r, "is_mac": isinstance(r.get("subject"), str) and bool(_MAC.match(r["subject"]))}
               for r in job["results"]["items"]]
    return html(request, "jobs_detail.html", title=f"Job {job['id']}", job=job, progress=_progress(job),
                actions_text=_actions_of(job), results=results, results_total=job["results"]["total"],
                filters=filters, query=dict(query, limit=limit), limit=limit, offset=offset,
                result_statuses=RESULT_STATUSES, has_rows=any(r.get("row") is not None for r in results),
                live=job["status"] == "IN PROGRESS", self_url=request.path_qs,
                created=request.query.get("created") == "1")


@routes.get(r"/jobs/{id:\d{1,12}}/export")
@page
async def job_export(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json").lower()
    result = await call(request, "GET", "/jobs/{id}/export", params={"id": request.match_info["id"]},
                        query={"format": fmt})
    if not result.ok:
        return error_page(request, result)
    if result.response is not None:
        return result.response  # the API's own answer: the file with Content-Disposition: attachment
    raise Refused(result)  # pragma: no cover - the export always answers a file


# --- bulk actions as jobs ----------------------------------------------------------------------------


def _choices(role: str, actions: set[str]) -> list[tuple[str, str]]:
    """The action sets this role may run (DEV-9), as (form value, label); approval for the platform."""
    sets: list[tuple[str, str]] = []
    if "jobs.create" in actions and role in rules.ROLE_ACTIONS:
        sets = [(",".join(s), " + ".join(a.capitalize() for a in s)) for s in rules.action_sets_for(role)]
    if "devices.approve" in actions:
        sets.append((APPROVE, "Approve imported devices"))
    return sets


async def _accounts(request: web.Request) -> list[dict[str, Any]]:
    """Accounts an Associate may target (those the administrator can see), best effort."""
    if "accounts.read" not in request[ME]["actions"]:
        return []
    listed = await call(request, "GET", "/accounts", query={"limit": 500})
    return list(listed.body.get("items", [])) if listed.ok and isinstance(listed.body, dict) else []


async def _labels(request: web.Request) -> list[dict[str, Any]]:
    """The labels a job may select by (DEV-8), the first LABELS_SHOWN by name."""
    if "labels.read" not in request[ME]["actions"]:
        return []
    listed = await call(request, "GET", "/labels", query={"limit": LABELS_SHOWN})
    return list(listed.body.get("items", [])) if listed.ok and isinstance(listed.body, dict) else []


LABELS_SHOWN = 200


def _form_values(form: MultiMapping[Any] | None, query: MultiMapping[str] | None) -> dict[str, Any]:
    source: Any = form if form is not None else query
    macs = [m.strip() for m in source.getall("mac", []) if isinstance(m, str) and m.strip()]
    typed = source.get("macs", "")
    lines = [line for line in (typed if isinstance(typed, str) else "").splitlines()]
    # The devices list posts its `mac` boxes: they join what was typed, one per line, no repeats.
    seen = {line.strip().split(",")[0].strip().upper() for line in lines if line.strip()}
    for mac in macs:
        if mac.upper() not in seen:
            lines.append(mac)
            seen.add(mac.upper())
    def text(name: str, limit: int) -> str:
        value = source.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    return {
        "name": text("name", 128),
        "actions": text("actions", 64),
        "account_id": text("account_id", 8),
        "site_id": text("site_id", 12),
        "macs": "\n".join(line.rstrip() for line in lines).strip("\n"),
        "all": source.get("all") == "1",
        # DEV-8: label ids ticked in the form (a job's selection, or a claim's labels to attach)
        "labels": [int(v) for v in source.getall("label", []) if isinstance(v, str) and v.isascii() and v.isdigit()
                   and len(v) <= 12][:100],
    }


async def _new_form(request: web.Request, values: dict[str, Any], status: int = 200,
                    error: str | None = None) -> web.Response:
    me = request[ME]
    choices = _choices(me["role"], set(me["actions"]))
    if not choices:
        return html(request, "error.html", 403, title="Not allowed", error="forbidden-role",
                    detail=f"A {me['role'].replace('_', ' ')} administrator cannot start device jobs.")
    needs_target = any("associate" in value.split(",") for value, _ in choices)
    return html(request, "jobs_new.html", status, title="New job", choices=choices, values=values, error=error,
                accounts=await _accounts(request) if needs_target else [], needs_target=needs_target,
                labels=await _labels(request),
                only_approve=[value for value, _ in choices] == [APPROVE])


@routes.get("/jobs/new")
@page
async def new_job_form(request: web.Request) -> web.StreamResponse:
    return await _new_form(request, _form_values(None, request.query))


def _lines(text: str) -> list[tuple[int, list[str]]]:
    return [(n, [p for p in _SEP.split(line.strip()) if p]) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def _claim_devices(text: str) -> list[dict[str, str]]:
    """DEV-3: `MAC,serial[,label code]` per line; a line without its serial is the user's to fix."""
    devices: list[dict[str, str]] = []
    for n, parts in _lines(text):
        if len(parts) < 2 or len(parts) > 3:
            raise ValueError(f"Line {n}: a claim names each device as MAC,serial (or MAC,serial,label code).")
        entry = {"mac": parts[0], "serial": parts[1]}
        if len(parts) == 3:
            entry["label_code"] = parts[2]
        devices.append(entry)
    return devices


def _macs(text: str) -> list[str]:
    macs: list[str] = []
    for n, parts in _lines(text):
        if len(parts) != 1:
            raise ValueError(f"Line {n}: one MAC address per line (a serial is needed for Claim only).")
        macs.append(parts[0])
    return macs


@routes.post("/jobs/new")
@form_action
async def new_job(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = _form_values(form, None)
    if form.get("create") != "1":
        # The devices list posts its selected `mac` boxes here: the form, prefilled.
        return await _new_form(request, values)
    me = request[ME]
    choices = dict(_choices(me["role"], set(me["actions"])))
    chosen = values["actions"]
    if chosen not in choices:
        return await _new_form(request, values, 422, "Choose one of the actions offered.")
    upload = form.get("selection_file")
    has_file = isinstance(upload, web.FileField) and bool(upload.filename)
    if has_file and chosen == APPROVE:
        return await _new_form(request, values, 422, "To approve devices, list their MACs (a file selects a job's).")
    if chosen == APPROVE:
        return await _approve(request, values)
    if not values["name"]:
        return await _new_form(request, values, 422, "Give the job a name.")
    target: dict[str, Any] = {}
    if "associate" in chosen.split(","):
        if values["account_id"]:
            target["account_id"] = values["account_id"]
        if values["site_id"]:
            if not (values["site_id"].isascii() and values["site_id"].isdigit()):
                return await _new_form(request, values, 422, "The site id is a number (see Sites & codes).")
            target["site_id"] = int(values["site_id"])
    if isinstance(upload, web.FileField) and has_file:
        # DEV-9, DEV-10: the devices a CSV file lists (`POST /jobs/upload`); its refused rows are
        # the job's FAIL results with their row numbers.
        data = upload.file.read(MAX_SELECTION_FILE + 1)
        if len(data) > MAX_SELECTION_FILE:
            return await _new_form(request, values, 413, "The file is larger than 10 MiB: split it.")
        result = await call(request, "POST", "/jobs/upload", data=data, content_type="text/csv",
                            query={"name": values["name"], "actions": chosen, **target})
    else:
        try:
            if chosen.split(",")[0] == "claim":
                selection: dict[str, Any] = {"devices": _claim_devices(values["macs"])}
                if values["labels"]:
                    target["labels"] = values["labels"]  # attached to the claimed devices (DEV-8)
            elif values["all"]:
                selection = {"all": True}
            elif values["labels"]:
                if values["macs"]:
                    raise ValueError("Select the devices by MAC or by label, not both.")
                selection = {"labels": values["labels"]}
            else:
                selection = {"macs": _macs(values["macs"])}
        except ValueError as exc:
            return await _new_form(request, values, 422, str(exc))
        if not next(iter(selection.values())):
            return await _new_form(request, values, 422,
                                   "List the devices, one per line, tick labels, or choose a file.")
        body = {"name": values["name"], "actions": chosen.split(","), **selection, **target}
        result = await call(request, "POST", "/jobs", body=body)
    if not result.ok:
        return await _new_form(request, values, result.status, _refusal(result.detail, result.error))
    return see_other(f"/jobs/{int(result.body['id'])}?created=1")


async def _approve(request: web.Request, values: dict[str, Any]) -> web.StreamResponse:
    """DEV-2: approval is one call, not a job; its per-device results are the answer page."""
    try:
        macs = _macs(values["macs"])
    except ValueError as exc:
        return await _new_form(request, values, 422, str(exc))
    if not macs:
        return await _new_form(request, values, 422, "List the devices, one per line.")
    result = await call(request, "POST", "/devices/approve", body={"macs": macs})
    if not result.ok:
        return await _new_form(request, values, result.status, _refusal(result.detail, result.error))
    return html(request, "jobs_approved.html", title="Devices approved", results=result.body["results"],
                summary=result.body["summary"])


def _refusal(detail: str, error: str) -> str:
    return f"{detail or 'The job was refused.'} ({error})" if error else (detail or "The job was refused.")
