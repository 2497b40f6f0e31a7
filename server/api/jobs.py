"""Admin API: bulk device jobs (DEV-9, DEV-10, DEV-12) and every job's results and export.

Decisions:
- `POST /jobs` checks everything it can before answering 202: the action set (DEV-9), the
  role's actions, the association target and site, the labels, and that the selection is not
  empty. The job then runs in the background, in transactions of `BATCH` devices; each device
  gets a result (SUCCESS, or FAIL with the rule's reason). The job ends COMPLETE when every
  device succeeded and FAIL when any failed (the others keep their changes).
- Selection: `macs` (a MAC not found or outside your hierarchy fails as `device-not-found`),
  `labels` (devices of your hierarchy carrying any of them), or `all: true` (DEV-12: every
  device your acting account holds). Claim selects by `macs` only — the devices are not yours
  yet — and its `labels` are attached to the claimed devices (the guide's "Associate with
  labels"). Labels are given by id, or by name among your account's labels.
- `POST /jobs/upload` is the guide's "Browse ... upload the file containing device information":
  the body is a CSV file (UTF-8, with or without BOM; `,`, `;` or tab separated) whose header
  names a `mac` and/or a `serial` column (other columns, e.g. an import file's, are ignored);
  the job's `name`, `actions` (comma-separated), `account_id` and `site_id` are query
  parameters. Each row selects one device: by its MAC (any PROTOCOL §1 form) or, when the MAC
  cell is empty, by serial number; when both are given they must name the same device (as for
  a claim, DEV-3). A row that selects nothing — no MAC or serial, a malformed MAC, a device not
  found or outside your hierarchy (`device-not-found`, ACC-7), a device an earlier row already
  selects, extra cells — becomes a FAIL result of the job with its row number, field and
  reason, and the other rows still run. Row numbers are those a spreadsheet shows (header row
  1), as for imports (DEV-1). An empty body, a header without data rows, or a body that is not
  such a CSV file (JSON, ZIP, no `mac`/`serial` column, not UTF-8) is refused whole with 422
  (`job-file-empty`, `job-file-not-csv`, `job-file-bad-encoding`); more than `MAX_MACS` rows is
  413 `job-file-too-large`. Claim looks devices up globally, like `POST /jobs` with `macs`. The
  job then runs exactly like a `macs` job (same runner); its device results carry the row.
- Interrupted jobs: several `enrollab serve` processes may share one database, so a server
  cannot tell a dead job from another server's live one by its status. Each process has a
  random `RUNNER_ID`; the runner stamps the job with it and writes `heartbeat_at` when it
  starts and after every batch. A sweep — at server start and every `SWEEP_SECONDS` — fails
  IN PROGRESS jobs whose heartbeat is older than `STALE_AFTER` (by the server's clock): status
  FAIL, `summary.reason` `interrupted` and a `summary.note`; the devices already processed keep
  their results and changes, the others were not touched. It never fails a job this process is
  still running, and skips job rows another transaction holds locked (a batch in progress).
  Every background job must therefore heartbeat at least every `STALE_AFTER`; a batch holds its
  job's row locked, and a runner whose job was failed meanwhile stops at its next batch.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import Select, and_, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices import (
    Notices,
    action_context,
    apply_actions,
    context_json,
    export_response,
    job_json,
    label_scope,
    normalize_macs,
    scope_devices,
    state_of,
    to_csv,
)
from server.api.routing import Api, Reply, Req, dumps
from server.api.scope import subtree_clause
from server.context import ServerContext
from server.domain import devices as rules
from server.domain.errors import DomainError, bad_request, invalid, not_found
from server.domain.identity import normalize_mac
from server.domain.inputs import ID_MAX, ascii_int, name_schema
from server.store.models import Account, Device, DeviceLabel, Job, JobResult, Label

log = logging.getLogger("enrollab.jobs")
api = Api()

BATCH = 500  # devices per background transaction
MAX_MACS = 100_000
MAX_UPLOAD = 10 << 20  # 10 MiB, as for device imports (DEV-1)
LOOKUP_CHUNK = 500  # values per IN (...) query: well under every backend's parameter limit
RESULT_FIELDS = ("subject", "file", "row", "field", "status", "reason", "detail")
COUNTS = ("done", "succeeded", "failed")

# One random id per server process: which process runs a job (see the module docstring).
RUNNER_ID = secrets.token_hex(8)
STALE_AFTER = timedelta(minutes=5)
SWEEP_SECONDS = 60.0
# (id(ctx), job id) of the jobs this process is running right now; the sweep leaves them alone.
_live: set[tuple[int, int]] = set()

CREATE = {
    "type": "object",
    "required": ["name", "actions"],
    "additionalProperties": False,
    "properties": {
        "name": name_schema(128, min_length=1),
        "actions": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 7},
        "account_id": {"type": ["string", "null"], "pattern": "^[0-9]{8}$"},
        "site_id": {"type": ["integer", "null"], "minimum": 1},
        "labels": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "integer", "minimum": 1},
                    {"type": "string", "minLength": 1, "maxLength": 64},
                ]
            },
            "minItems": 1,
            "maxItems": 100,
        },
        "macs": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 32},
            "minItems": 1,
            "maxItems": MAX_MACS,
        },
        "all": {"const": True},
    },
}

UPLOAD_TYPES = ("text/csv", "application/octet-stream")
# Browsers on Windows label .csv files as Excel; some clients send text/plain.
_CSV_ALIASES = frozenset({*UPLOAD_TYPES, "text/plain", "application/csv", "application/vnd.ms-excel"})
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_WIDE_BOMS = ((b"\xff\xfe", "UTF-16/32"), (b"\xfe\xff", "UTF-16"), (b"\x00\x00\xfe\xff", "UTF-32"))
_DELIMITERS = (",", ";", "\t")
SELECT_COLUMNS = ("mac", "serial")


def _subtree(actor: Actor, path: Any) -> Any:
    return subtree_clause(actor, path)


# --- selection ------------------------------------------------------------------------------------


def _selection(body: dict[str, Any], actions: tuple[str, ...]) -> str:
    """DEV-9, DEV-12: which devices a job acts on — exactly one of macs, labels, all."""
    if "claim" in actions:
        if "macs" not in body or body.get("all"):
            raise invalid("invalid-selection", "A claim job names its devices by MAC; its labels are attached to them.")
        return "macs"
    chosen = [key for key in ("macs", "labels", "all") if body.get(key)]
    if len(chosen) != 1:
        raise invalid("invalid-selection", "Select the devices with exactly one of macs, labels or all: true.", chosen)
    return chosen[0]


async def _label_ids(session: AsyncSession, actor: Actor, wanted: list[int | str]) -> list[int]:
    """DEV-8: labels by id (of your hierarchy) or by name (of your account); unknown ones are a 404."""
    ids: list[int] = []
    for item in wanted:
        if isinstance(item, int):
            found = await session.scalar(select(Label.id).where(Label.id == item, label_scope(actor)))
        else:
            found = await session.scalar(
                select(Label.id).where(Label.account_id == actor.acting_id, Label.name == item)
            )
        if found is None:
            raise not_found("label-not-found", f"no label {item!r} in your hierarchy")
        ids.append(found)
    return list(dict.fromkeys(ids))


def _selected(actor: Actor, params: dict[str, Any]) -> Select[Any]:
    """The devices a labels or all job acts on (macs jobs walk their list instead)."""
    if params["selection"] == "all":
        return select(Device).where(Device.owner_id == actor.acting_id)
    carries = exists().where(DeviceLabel.mac == Device.mac, DeviceLabel.label_id.in_(params["label_ids"]))
    return scope_devices(select(Device), actor).where(carries)


async def _target(req: Req, actions: Sequence[str], account_id: str | None, site_id: int | None) -> rules.ActionContext:
    """DEV-4: Associate needs a target; the rules' facts are looked up once, when the job starts."""
    if "associate" in actions and account_id is None and site_id is None:
        raise invalid("association-target-required", "Associate needs an account_id, a site_id, or both.")
    return await action_context(req.session, req.actor, actions, account_id, site_id)


# --- selection by file (POST /jobs/upload) --------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    """One data row of an uploaded selection file; `reason` set when the row selects nothing."""

    row: int
    mac: str | None = None
    serial: str | None = None
    field: str | None = None
    reason: str | None = None
    detail: str | None = None

    def refused(self, field: str | None, reason: str, detail: str) -> FileRow:
        return replace(self, field=field, reason=reason, detail=detail)


def _file_error(error: str, detail: str, value: Any = None) -> DomainError:
    return DomainError(error, detail, 413 if error == "job-file-too-large" else 422, value)


_NOT_CSV = "This call takes a CSV file whose header row names a mac and/or serial column."


def _header_cells(line: str, delimiter: str) -> list[str]:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []
    return [cell.strip().lower() for cell in cells]


def _delimiter(text: str) -> str | None:
    """The first delimiter that makes the header row name a mac or serial column."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delimiter in _DELIMITERS:
        if set(_header_cells(first, delimiter)) & set(SELECT_COLUMNS):
            return delimiter
    return None


def _decode(data: bytes) -> str:
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise _file_error("job-file-bad-encoding", f"The file is {encoding}; save it as UTF-8.", encoding)
    try:
        return data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        # Text with a few bad bytes is a mis-saved CSV; anything else is not a CSV file at all.
        lossy = data.decode("utf-8", errors="replace")
        if "\x00" in lossy or _delimiter(lossy) is None:
            raise _file_error("job-file-not-csv", f"The upload is not a text file. {_NOT_CSV}") from exc
        raise _file_error(
            "job-file-bad-encoding", f"The file is not valid UTF-8 (byte {exc.start}); save it as UTF-8.", exc.start
        ) from exc


def _preview(value: str) -> str:
    return value if len(value) <= 80 else value[:79] + "…"


def _file_row(row: int, header: list[str], cells: list[str]) -> FileRow:
    if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
        return FileRow(row).refused(
            None, "extra-cells", f"The row has {len(cells)} cells; the header names {len(header)} columns."
        )
    values = dict(zip(header, (cell.strip() for cell in cells), strict=False))
    mac_cell, serial = values.get("mac") or None, values.get("serial") or None
    if mac_cell is None and serial is None:
        return FileRow(row).refused(
            "mac" if "mac" in header else "serial",
            "missing-field",
            "The row has neither a MAC address nor a serial number.",
        )
    if mac_cell is None:
        return FileRow(row, serial=serial)
    try:
        mac = normalize_mac(mac_cell)
    except DomainError as err:
        return FileRow(row, serial=serial).refused("mac", err.error, f"{err.detail} Value: {_preview(mac_cell)!r}")
    return FileRow(row, mac=mac, serial=serial)


def parse_selection_csv(data: bytes, max_rows: int = MAX_MACS) -> list[FileRow]:
    """DEV-9: the rows of an uploaded selection file (see the module docstring); whole-file
    problems raise, a bad row is returned refused with its row number."""
    if not data.removeprefix(_UTF8_BOM).strip():
        raise _file_error("job-file-empty", f"The uploaded file is empty. {_NOT_CSV}")
    if data.startswith(_ZIP_MAGIC):
        raise _file_error("job-file-not-csv", f"The upload is a ZIP archive. {_NOT_CSV}", "zip")
    text = _decode(data)
    if text.lstrip().startswith(("{", "[")):
        raise _file_error("job-file-not-csv", f"The upload is JSON; send macs in a POST /jobs body instead. {_NOT_CSV}")
    delimiter = _delimiter(text)
    if delimiter is None:
        first = next((line for line in text.splitlines() if line.strip()), "")
        raise _file_error(
            "job-file-not-csv", f"The header row names no mac or serial column. {_NOT_CSV}", _preview(first)
        )
    header: list[str] | None = None
    rows: list[FileRow] = []
    line = 0
    try:
        for line, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines count as rows (a spreadsheet shows them) but select nothing
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                for name in SELECT_COLUMNS:
                    if header.count(name) > 1:
                        raise _file_error("job-file-not-csv", f"The header names the column {name!r} twice.", name)
                continue
            rows.append(_file_row(line, header, cells))
            if len(rows) > max_rows:
                raise _file_error(
                    "job-file-too-large", f"The file selects more than {max_rows} devices; split it.", max_rows
                )
    except csv.Error as exc:
        raise _file_error(
            "job-file-not-csv", f"The CSV file is malformed near row {line + 1}: {exc}.", line + 1
        ) from exc
    if not rows:
        raise _file_error("job-file-empty", "The file has a header row but no device rows.")
    return rows


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + LOOKUP_CHUNK] for i in range(0, len(items), LOOKUP_CHUNK)]


async def _resolve(
    session: AsyncSession, actor: Actor, rows: list[FileRow], *, anywhere: bool
) -> tuple[list[str], dict[str, int], list[FileRow]]:
    """The MACs a file selects (in row order), each MAC's row, and the refused rows.

    ACC-7: devices outside the actor's hierarchy read as not found; `anywhere` (claim) looks
    them up globally, since unclaimed devices belong to no hierarchy yet.
    """

    def lookup(stmt: Any) -> Any:  # scope_devices is typed for whole-row selects; columns work the same
        return stmt if anywhere else scope_devices(stmt, actor)

    serial_of: dict[str, str] = {}
    for chunk in _chunks(list({r.mac for r in rows if r.mac and not r.reason})):
        serial_of.update(
            (m, s)
            for m, s in await session.execute(lookup(select(Device.mac, Device.serial)).where(Device.mac.in_(chunk)))
        )
    mac_of: dict[str, str] = {}
    for chunk in _chunks(list({r.serial for r in rows if r.serial and not r.mac and not r.reason})):
        mac_of.update(
            (s, m)
            for m, s in await session.execute(lookup(select(Device.mac, Device.serial)).where(Device.serial.in_(chunk)))
        )
    macs: list[str] = []
    row_of: dict[str, int] = {}
    refused: list[FileRow] = []
    for r in rows:
        if r.reason is None:
            r = _check_row(r, serial_of, mac_of, row_of)
        if r.reason is not None:
            refused.append(r)
            continue
        assert r.mac is not None
        macs.append(r.mac)
        row_of[r.mac] = r.row
    return macs, row_of, refused


def _check_row(r: FileRow, serial_of: dict[str, str], mac_of: dict[str, str], row_of: dict[str, int]) -> FileRow:
    if r.mac is not None:
        field = "mac"
        if r.mac not in serial_of:
            return r.refused("mac", "device-not-found", f"no device {r.mac} in your hierarchy")
        if r.serial is not None and serial_of[r.mac] != r.serial:
            return r.refused(
                "serial", "mac-serial-mismatch", f"MAC {r.mac} and serial number {r.serial} are not the same device"
            )
    else:
        field = "serial"
        found = mac_of.get(r.serial or "")
        if found is None:
            return r.refused("serial", "device-not-found", f"no device with serial number {r.serial} in your hierarchy")
        r = replace(r, mac=found)
    assert r.mac is not None
    if r.mac in row_of:
        return r.refused(field, "duplicate-device", f"row {row_of[r.mac]} already selects device {r.mac}")
    return r


def _refused_result(job_id: int, r: FileRow) -> dict[str, Any]:
    subject = r.mac or (r.serial[:64] if r.serial else None) or f"row {r.row}"
    return {
        "job_id": job_id,
        "subject": subject,
        "row": r.row,
        "field": r.field,
        "status": "FAIL",
        "reason": (r.reason or "")[:64],
        "detail": r.detail,
    }


def _query_param(req: Req, name: str, *, required: bool = False) -> str | None:
    value = (req.query(name) or "").strip()
    if not value and required:
        raise invalid("invalid-query", f"The query parameter {name!r} is required.", name)
    return value or None


# --- routes ---------------------------------------------------------------------------------------


async def _open_job(
    req: Req,
    *,
    actions: tuple[str, ...],
    name: str,
    params: dict[str, Any],
    total: int,
    refused: Sequence[FileRow] = (),
) -> Reply:
    """Store a new job (with the rows refused up front) and start the runner after commit."""
    job = Job(
        account_id=req.actor.acting_id,
        created_by=req.actor.login,
        name=name,
        kind="devices",
        actions=list(actions),
        params=params,
        status="IN PROGRESS",
        summary={"total": total, "done": len(refused), "succeeded": 0, "failed": len(refused)},
        created_at=req.now,
        # Stamped now, so a server dying before its runner starts still leaves a job the sweep finds.
        heartbeat_at=req.now,
        runner_id=RUNNER_ID,
    )
    req.session.add(job)
    await req.session.flush()
    job_id, ctx_server = job.id, req.ctx
    for start in range(0, len(refused), 1000):
        await req.session.execute(
            insert(JobResult), [_refused_result(job_id, r) for r in refused[start : start + 1000]]
        )

    async def start_runner() -> None:
        ctx_server.spawn(run_device_job(ctx_server, job_id))

    req.after_commit.append(start_runner)
    how = params["selection"] if params.get("source") != "file" else f"file, {len(refused)} rows refused"
    req.audit_message = f"job {job_id} '{job.name}': {'+'.join(actions)} on {total} devices ({how})"
    answer: dict[str, Any] = {"id": job_id, "status": job.status, "total": total}
    if params.get("source") == "file":
        answer["refused"] = len(refused)
    return Reply(answer, 202)


@api.route(
    "POST",
    "/jobs",
    summary="Start a bulk device job (DEV-9, DEV-12); answers 202 with its id",
    action="jobs.create",
    process="JOB",
    body=CREATE,
    status=202,
    max_body=4 << 20,
)
async def create_job(req: Req) -> Any:
    actions = rules.validate_action_set(req.body["actions"])
    rules.authorize_actions(req.actor.role, actions)
    selection = _selection(req.body, actions)
    ctx = await _target(req, actions, req.body.get("account_id"), req.body.get("site_id"))
    label_ids = await _label_ids(req.session, req.actor, req.body["labels"]) if req.body.get("labels") else []
    params: dict[str, Any] = {
        "selection": selection,
        "label_ids": label_ids,
        "context": context_json(ctx),
        "actor": asdict(req.actor),
    }
    if selection == "macs":
        params["macs"] = normalize_macs(req.body["macs"])
        total = len(params["macs"])
    else:
        total = await req.session.scalar(select(func.count()).select_from(_selected(req.actor, params).subquery())) or 0
    if total == 0:
        raise invalid("no-devices", "The selection holds no devices.")
    return await _open_job(req, actions=actions, name=req.body["name"], params=params, total=total)


@api.route(
    "POST",
    "/jobs/upload",
    summary=(
        "Start a bulk device job on the devices a CSV file lists (DEV-9, DEV-10); answers 202 with its id. "
        "Body: CSV (max 10 MiB) with a header naming a mac and/or serial column, one device per row "
        "(by MAC, or by serial when the MAC is empty). Query: name, actions (comma-separated), "
        "account_id?, site_id?. Rows that select no device (bad MAC, unknown or outside your hierarchy, "
        "repeated) become FAIL results with their row number; the rest runs. An empty or non-CSV body "
        "is 422 job-file-empty / job-file-not-csv / job-file-bad-encoding."
    ),
    action="jobs.create",
    process="JOB",
    raw_body=UPLOAD_TYPES,
    max_body=MAX_UPLOAD,
    status=202,
    query=(
        ("name", "the job's name (required)"),
        ("actions", "comma-separated DEV-9 action set, e.g. claim,associate,activate (required)"),
        ("account_id", "Associate: the target account"),
        ("site_id", "Associate: the target site"),
    ),
)
async def upload_job(req: Req) -> Any:
    name = _query_param(req, "name", required=True) or ""
    if len(name) > 128:
        raise invalid("invalid-query", "The job name is at most 128 characters.", _preview(name))
    wanted = [a for a in (_query_param(req, "actions", required=True) or "").split(",") if a.strip()]
    actions = rules.validate_action_set(wanted)
    rules.authorize_actions(req.actor.role, actions)
    account_id = _query_param(req, "account_id")
    if account_id is not None and not (len(account_id) == 8 and ascii_int(account_id, 0, 99_999_999) is not None):
        raise invalid("invalid-query", "account_id is an 8-digit account id.", _preview(account_id))
    site = _query_param(req, "site_id")
    site_id = None if site is None else ascii_int(site, 1, ID_MAX)
    if site is not None and site_id is None:
        raise invalid("invalid-query", "site_id is a positive integer.", _preview(site))
    ctx = await _target(req, actions, account_id, site_id)
    media = req.request.content_type.lower()
    if req.request.headers.get("Content-Type") and media not in _CSV_ALIASES:
        raise _file_error("job-file-not-csv", f"The upload is sent as {media}; send it as text/csv. {_NOT_CSV}", media)
    # A 10 MiB file takes a moment to parse: off the event loop, so other requests go on.
    rows = await asyncio.to_thread(parse_selection_csv, req.raw or b"")
    macs, row_of, refused = await _resolve(req.session, req.actor, rows, anywhere="claim" in actions)
    params: dict[str, Any] = {
        "selection": "macs",
        "source": "file",
        "label_ids": [],
        "context": context_json(ctx),
        "actor": asdict(req.actor),
        "macs": macs,
        "rows": row_of,
    }
    return await _open_job(req, actions=actions, name=name, params=params, total=len(rows), refused=refused)


def _job_scope(actor: Actor) -> Select[Any]:
    return select(Job).join(Account, Account.id == Job.account_id).where(_subtree(actor, Account.path))


async def _job_in_scope(req: Req) -> Job:
    job_id = req.int_param("id")
    job = await req.session.scalar(_job_scope(req.actor).where(Job.id == job_id))
    if job is None:
        raise not_found("job-not-found", f"no job {job_id} in your hierarchy")
    return job


@api.route(
    "GET",
    "/jobs",
    summary="Jobs of your hierarchy, newest first (DEV-10)",
    action="jobs.read",
    process="JOB",
    query=(("status", "IN PROGRESS, COMPLETE or FAIL"), ("kind", "import or devices"), ("name", "contains")),
)
async def list_jobs(req: Req) -> Any:
    limit, offset = req.page()
    stmt = _job_scope(req.actor)
    if status := req.query("status"):
        stmt = stmt.where(Job.status == status.upper())
    if kind := req.query("kind"):
        stmt = stmt.where(Job.kind == kind)
    if name := req.query("name"):
        stmt = stmt.where(Job.name.contains(name, autoescape=True))
    total = await req.session.scalar(select(func.count()).select_from(stmt.subquery()))
    jobs = await req.session.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset))
    return {"items": [job_json(j) for j in jobs], "total": total}


def result_json(r: JobResult) -> dict[str, Any]:
    return {name: getattr(r, name) for name in RESULT_FIELDS}


@api.route(
    "GET",
    "/jobs/{id}",
    summary="A job with its per-device (or per-row) results, paged (DEV-10)",
    action="jobs.read",
    process="JOB",
    query=(
        ("status", "results with this status (SUCCESS or FAIL)"),
        ("subject", "results for this MAC or row"),
    ),
)
async def get_job(req: Req) -> Any:
    job = await _job_in_scope(req)
    limit, offset = req.page()
    cond = [JobResult.job_id == job.id]
    if status := req.query("status"):
        cond.append(JobResult.status == status.upper())
    if subject := req.query("subject"):
        cond.append(JobResult.subject == subject)
    total = await req.session.scalar(select(func.count()).select_from(JobResult).where(*cond))
    rows = await req.session.scalars(select(JobResult).where(*cond).order_by(JobResult.id).limit(limit).offset(offset))
    body = job_json(job)
    body["heartbeat_at"], body["runner_id"] = job.heartbeat_at, job.runner_id
    body["results"] = {"items": [result_json(r) for r in rows], "total": total}
    return body


@api.route(
    "GET",
    "/jobs/{id}/export",
    summary="Export a job's results as JSON or CSV (DEV-10)",
    action="jobs.read",
    process="JOB",
    query=(("format", "json (default) or csv"),),
)
async def export_job(req: Req) -> Any:
    job = await _job_in_scope(req)
    fmt = (req.query("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise bad_request("invalid-format", "format must be json or csv", fmt)
    rows = [
        result_json(r)
        for r in await req.session.scalars(select(JobResult).where(JobResult.job_id == job.id).order_by(JobResult.id))
    ]
    if fmt == "json":
        return export_response(dumps({"job": job_json(job), "results": rows}), f"job-{job.id}.json", "application/json")
    return export_response(to_csv(RESULT_FIELDS, rows), f"job-{job.id}.csv", "text/csv")


# --- the background run ---------------------------------------------------------------------------


async def run_device_job(ctx: ServerContext, job_id: int) -> None:
    """DEV-9, DEV-10: apply a job's actions to its devices, BATCH per transaction, then close it."""
    key = (id(ctx), job_id)
    _live.add(key)
    try:
        await _run(ctx, job_id)
    except Exception as exc:  # a crash must not leave the job IN PROGRESS for ever
        log.exception("job %s failed", job_id)
        async with ctx.store.transaction() as s:
            job = await _lock_job(s, job_id)
            if job is not None and job.status == "IN PROGRESS":
                job.status = "FAIL"
                job.summary = {**job.summary, "error": "internal-error", "detail": type(exc).__name__}
                job.finished_at = ctx.clock()
    finally:
        _live.discard(key)


async def _lock_job(s: AsyncSession, job_id: int) -> Job | None:
    # The job row is locked first in every runner transaction, then devices: one order, no
    # deadlock; and the sweep skips a locked row, so a batch in progress is never failed.
    return await s.scalar(select(Job).where(Job.id == job_id).with_for_update())


async def _run(ctx: ServerContext, job_id: int) -> None:
    async with ctx.store.transaction() as s:
        job = await _lock_job(s, job_id)
        if job is None or job.status != "IN PROGRESS":
            return
        actions, params = list(job.actions), dict(job.params)
        # An upload's refused rows are counted when the job is created.
        counts = {name: int(job.summary.get(name, 0)) for name in COUNTS}
        job.runner_id, job.heartbeat_at = RUNNER_ID, ctx.clock()
    actor = Actor(**params["actor"])
    action_ctx = rules.ActionContext(**params["context"])
    notices = Notices()
    macs: list[str] = params.get("macs") or []
    position, after = 0, ""
    while True:
        async with ctx.store.transaction() as s:
            job = await _lock_job(s, job_id)
            if job is None or job.status != "IN PROGRESS":
                log.warning("job %s was closed while it ran (%s); stopping", job_id, job.status if job else "deleted")
                return
            if params["selection"] == "macs":
                batch = macs[position : position + BATCH]
                position += BATCH
                if not batch:
                    break
                # Claim finds devices nobody holds yet; other actions only those in your hierarchy.
                stmt = select(Device).where(Device.mac.in_(batch))
                if "claim" not in actions:
                    stmt = scope_devices(stmt, actor)
                rows = {d.mac: d for d in await s.scalars(stmt.with_for_update(of=Device))}
                subjects = batch
            else:
                page = list(
                    await s.scalars(
                        _selected(actor, params)
                        .where(Device.mac > after)
                        .order_by(Device.mac)
                        .limit(BATCH)
                        .with_for_update(of=Device)
                    )
                )
                if not page:
                    break
                after = page[-1].mac
                rows = {d.mac: d for d in page}
                subjects = [d.mac for d in page]
            await _batch(s, job_id, subjects, rows, actions, action_ctx, actor, params, notices, counts)
            job.summary = {**job.summary, **counts}
            job.heartbeat_at = ctx.clock()
    async with ctx.store.transaction() as s:
        job = await _lock_job(s, job_id)
        if job is None or job.status != "IN PROGRESS":
            return
        job.status = "FAIL" if counts["failed"] else "COMPLETE"
        job.summary = {**job.summary, **counts}
        job.finished_at = job.heartbeat_at = ctx.clock()
        await notices.queue(s, actor.login, ctx.clock())


async def _batch(
    s: AsyncSession,
    job_id: int,
    subjects: list[str],
    rows: dict[str, Device],
    actions: list[str],
    action_ctx: rules.ActionContext,
    actor: Actor,
    params: dict[str, Any],
    notices: Notices,
    counts: dict[str, int],
) -> None:
    claimed: list[str] = []
    file_rows: dict[str, int] = params.get("rows") or {}
    for mac in subjects:
        row = rows.get(mac)
        err: DomainError | None
        if row is None:
            err = not_found("device-not-found", f"no device {mac} in your hierarchy")
        else:
            before = state_of(row)
            after, err = apply_actions(row, actions, action_ctx)
            if err is None:
                notices.add(before, after, actions, actor.acting_id)
                claimed.append(mac)
        counts["done"] += 1
        counts["failed" if err else "succeeded"] += 1
        s.add(
            JobResult(
                job_id=job_id,
                subject=mac,
                row=file_rows.get(mac),
                status="FAIL" if err else "SUCCESS",
                reason=err.error[:64] if err else None,
                detail=(f"{err.extra['action']}: " if "action" in err.extra else "") + err.detail if err else None,
            )
        )
    if "claim" in actions and params["label_ids"] and claimed:
        await _attach(s, claimed, params["label_ids"])


async def _attach(s: AsyncSession, macs: list[str], label_ids: list[int]) -> None:
    """DEV-8: a claim job's labels go onto the devices it claimed (kept if already there)."""
    rows = await s.execute(
        select(DeviceLabel.mac, DeviceLabel.label_id).where(
            DeviceLabel.mac.in_(macs), DeviceLabel.label_id.in_(label_ids)
        )
    )
    present = {(mac, label_id) for mac, label_id in rows}
    s.add_all(
        DeviceLabel(mac=mac, label_id=label_id)
        for mac in macs
        for label_id in label_ids
        if (mac, label_id) not in present
    )


# --- interrupted jobs -----------------------------------------------------------------------------


async def sweep_interrupted_jobs(ctx: ServerContext) -> list[int]:
    """DEV-10: fail the IN PROGRESS jobs whose server stopped (no heartbeat for STALE_AFTER).

    Jobs from before heartbeats existed (none written) count from their creation. Answers the
    ids of the jobs it failed.
    """
    now = ctx.clock()
    cutoff = now - STALE_AFTER
    mine = {job_id for owner, job_id in _live if owner == id(ctx)}
    stale = or_(Job.heartbeat_at < cutoff, and_(Job.heartbeat_at.is_(None), Job.created_at < cutoff))
    failed: list[int] = []
    async with ctx.store.transaction() as s:
        jobs = await s.scalars(
            select(Job).where(Job.status == "IN PROGRESS", stale).order_by(Job.id).with_for_update(skip_locked=True)
        )
        for job in jobs:
            if job.runner_id == RUNNER_ID and job.id in mine:
                continue  # slow, not dead: this process is still running it
            summary = dict(job.summary)
            done, total = summary.get("done", 0), summary.get("total", "?")
            last = job.heartbeat_at or job.created_at
            summary["reason"] = "interrupted"
            summary["note"] = (
                f"The server running this job (runner {job.runner_id or 'unknown'}) stopped: no heartbeat "
                f"since {last.isoformat()}. {done} of {total} devices were processed and keep their results; "
                "the others were not changed."
            )
            job.summary = summary
            job.status = "FAIL"
            job.finished_at = now
            failed.append(job.id)
    for job_id in failed:
        log.warning("job %s interrupted: its server stopped before it finished", job_id)
    return failed


async def sweep_loop(ctx: ServerContext, interval: float = SWEEP_SECONDS) -> None:
    """Sweep at once (server start), then every `interval` seconds until cancelled."""
    while True:
        try:
            await sweep_interrupted_jobs(ctx)
        except Exception:  # an unreachable database now must not end the sweeps for good
            log.exception("the sweep for interrupted jobs failed")
        await asyncio.sleep(interval)


def recovery_sweep(ctx: ServerContext) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context: the sweep runs while the admin app runs, and stops with it."""

    async def run(_app: web.Application) -> AsyncIterator[None]:
        task = ctx.spawn(sweep_loop(ctx))
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    return run
