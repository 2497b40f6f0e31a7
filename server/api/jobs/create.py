"""Creating bulk device jobs: `POST /jobs` and `POST /jobs/upload` (DEV-9, DEV-12).

Decisions:
- Both check everything they can before answering 202: the action set (DEV-9), the role's
  actions, the association target and site, the labels, and that the selection is not empty.
  The job is stored IN PROGRESS with what it will do (`params`: selection, target, actor) and
  runs in the background (`runner`) once the request's transaction committed.
- Selection: `macs` (a MAC not found or outside your hierarchy fails as `device-not-found`),
  `labels` (devices of your hierarchy carrying any of them), or `all: true` (DEV-12: every
  device your acting account holds). Labels are given by id, or by name among your account's
  labels.
- Claim is the exception to PROTOCOL §3's `macs? or file` (DEV-3 claim proof, issue 13): the
  devices are not yours yet, so a claim job names each one with its proof, `devices: [{mac,
  serial, label_code?}]` (`macs` alone is 422 `claim-needs-serial`), or a file with `mac` and
  `serial` columns; the proofs are checked before the job is stored, under the claiming
  account's failure budget, exactly as `POST /devices/claim` checks them (`proof`). Its
  `labels` are attached to the claimed devices (the guide's "Associate with labels").
- `POST /jobs/upload` is the guide's "Browse ... upload the file containing device information":
  the body is a CSV file (`selection_file`); the job's `name`, `actions` (comma-separated),
  `account_id` and `site_id` are query parameters. The rows the file cannot select are the
  job's FAIL results from the start; the job then runs exactly like a `macs` job (same runner)
  and its device results carry the row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices import action_context, context_json, label_scope, normalize_macs
from server.api.devices.claim import check_claim_budget, label_code_required_for
from server.api.devices.schemas import TOO_MANY_CLAIMS
from server.api.jobs.proof import PROOF, claim_needs_serial, prove_claims
from server.api.jobs.runner import RUNNER_ID, selected_devices, start_job
from server.api.jobs.selection_file import (
    MAX_MACS,
    NOT_CSV,
    FileRow,
    file_error,
    parse_selection_csv,
    preview,
    refused_result,
    resolve_rows,
)
from server.api.routing import Api, Reply, Req
from server.domain import claim_proof
from server.domain import devices as rules
from server.domain.errors import DomainError, invalid, not_found
from server.domain.identity import normalize_mac
from server.domain.inputs import ID_MAX, ascii_int, name_schema
from server.store.models import Job, JobResult, Label

api = Api()

MAX_UPLOAD = 10 << 20  # 10 MiB, as for device imports (DEV-1)

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
        "devices": {
            "type": "array",
            "description": (
                "Claim jobs only, instead of macs (DEV-3 claim proof): each device's MAC, the serial number "
                f"printed on its box and its label code where it has one or your account requires one; at "
                f"most {MAX_MACS}. A device that is unknown or whose proof is wrong ends FAIL device-not-found."
            ),
            "items": {
                "type": "object",
                "required": ["mac", "serial"],
                "additionalProperties": False,
                "properties": {
                    "mac": {"type": "string", "minLength": 1, "maxLength": 32},
                    # Proofs: `writeOnly`, so no refusal quotes them (`server.domain.inputs.has_secrets`).
                    "serial": {"type": "string", "minLength": 1, "maxLength": 64, "writeOnly": True},
                    # No type or length here: `_claims` checks it, so every malformed label code
                    # is one id (invalid-label-code), and never echoed.
                    "label_code": {"writeOnly": True, "description": "a string: the label code printed on the box"},
                },
            },
            "minItems": 1,
        },
    },
}

UPLOAD_TYPES = ("text/csv", "application/octet-stream")
# Browsers on Windows label .csv files as Excel; some clients send text/plain.
_CSV_ALIASES = frozenset({*UPLOAD_TYPES, "text/plain", "application/csv", "application/vnd.ms-excel"})


def _selection(body: dict[str, Any], actions: tuple[str, ...]) -> str:
    """DEV-9, DEV-12: which devices a job acts on — exactly one of macs, labels, all; a claim
    job names its devices with their proof (DEV-3, `proof`)."""
    if "claim" in actions:
        if body.get("all") or ("macs" in body and "devices" in body):
            raise invalid(
                "invalid-selection",
                "A claim job names its devices in devices: [{mac, serial, label_code?}] only; "
                "its labels are attached to them.",
            )
        if "devices" not in body:
            raise claim_needs_serial()
        return "devices"
    if "devices" in body:
        raise invalid(
            "invalid-selection",
            "devices (MACs with serial numbers) select a claim job's devices; other jobs select with macs, labels "
            "or all: true.",
        )
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


async def _target(req: Req, actions: Sequence[str], account_id: str | None, site_id: int | None) -> rules.ActionContext:
    """DEV-4: Associate needs a target; the rules' facts are looked up once, when the job starts."""
    if "associate" in actions and account_id is None and site_id is None:
        raise invalid("association-target-required", "Associate needs an account_id, a site_id, or both.")
    return await action_context(req.session, req.actor, actions, account_id, site_id)


def _query_param(req: Req, name: str, *, required: bool = False) -> str | None:
    value = (req.query(name) or "").strip()
    if not value and required:
        raise invalid("invalid-query", f"The query parameter {name!r} is required.", name)
    return value or None


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
        await req.session.execute(insert(JobResult), [refused_result(job_id, r) for r in refused[start : start + 1000]])

    async def start_runner() -> None:
        start_job(ctx_server, job_id)

    req.after_commit.append(start_runner)
    if params.get("source") == "file":
        how = f"file, {len(refused)} rows refused"
    elif params.get("proof"):
        how = f"devices with serial numbers, {len(refused)} refused"
    else:
        how = params["selection"]
    req.audit_message = f"job {job_id} '{job.name}': {'+'.join(actions)} on {total} devices ({how})"
    answer: dict[str, Any] = {"id": job_id, "status": job.status, "total": total}
    if params.get("source") == "file":
        answer["refused"] = len(refused)
    return Reply(answer, 202)


@api.route(
    "POST",
    "/jobs",
    summary=(
        "Start a bulk device job (DEV-9, DEV-12); answers 202 with its id. Select with exactly one of macs, "
        "labels or all: true — except claim jobs (DEV-3 claim proof, the exception to PROTOCOL §3's "
        "`macs? or file`), which name each device with its proof in devices: [{mac, serial, label_code?}] "
        "(macs alone: 422 claim-needs-serial). A claim device that is unknown or whose proof is wrong ends "
        "FAIL device-not-found and counts toward your account's claim failure budget: a spent budget is "
        "429 too-many-attempts with Retry-After, and devices after it ran out end FAIL too-many-attempts"
    ),
    action="jobs.create",
    process="JOB",
    body=CREATE,
    status=202,
    max_body=MAX_UPLOAD,
    responses=TOO_MANY_CLAIMS,
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
    if selection == "devices":
        claims = await _claims(req, req.body["devices"])
        macs, _, refused = await prove_claims(req, claims)
        params.update(selection="macs", macs=macs, proof=PROOF, refused=len(refused))
        return await _open_job(
            req, actions=actions, name=req.body["name"], params=params, total=len(claims), refused=refused
        )
    if selection == "macs":
        params["macs"] = normalize_macs(req.body["macs"])
        total = len(params["macs"])
    else:
        counted = select(func.count()).select_from(selected_devices(req.actor, params).subquery())
        total = await req.session.scalar(counted) or 0
    if total == 0:
        raise invalid("no-devices", "The selection holds no devices.")
    return await _open_job(req, actions=actions, name=req.body["name"], params=params, total=total)


async def _claims(req: Req, devices: list[dict[str, Any]]) -> list[FileRow]:
    """DEV-3: a claim job's entries, checked as far as the input alone allows (`proof`): the
    budget first (429), then the whole request's shape — size, MACs, label codes, policy."""
    check_claim_budget(req)
    if len(devices) > MAX_MACS:
        raise invalid("invalid-body", f"devices: at most {MAX_MACS} devices per job; split it.", MAX_MACS)
    macs = [normalize_mac(d["mac"]) for d in devices]  # one malformed MAC refuses the request
    codes = [_label_code(d.get("label_code")) for d in devices]
    if None in codes and await label_code_required_for(req.session, req.actor.acting_id):
        raise claim_proof.label_code_required()  # before any look-up, as a single claim
    return [
        FileRow(None, mac=mac, serial=d["serial"], label_code=code)
        for mac, d, code in zip(macs, devices, codes, strict=True)
    ]


def _label_code(value: Any) -> str | None:
    """A claim entry's label code, normalised; a malformed one refuses the request without
    echoing it (the refusal's detail goes to the audit log)."""
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return claim_proof.normalize_label_code(value)
    except (ValueError, DomainError):
        raise invalid(
            "invalid-label-code", "A label code is a string of 4 to 32 letters and digits (blanks and '-' are ignored)."
        ) from None


@api.route(
    "POST",
    "/jobs/upload",
    summary=(
        "Start a bulk device job on the devices a CSV file lists (DEV-9, DEV-10); answers 202 with its id. "
        "Body: CSV (max 10 MiB) with a header naming a mac and/or serial column, one device per row "
        "(by MAC, or by serial when the MAC is empty). Query: name, actions (comma-separated), "
        "account_id?, site_id?. Rows that select no device (bad MAC, unknown or outside your hierarchy, "
        "repeated) become FAIL results with their row number; the rest runs. An empty or non-CSV body "
        "is 422 job-file-empty / job-file-not-csv / job-file-bad-encoding. A claim job's file needs mac and "
        "serial columns and, where the device has a label code or your account requires one, label_code "
        "(DEV-3 claim proof; no serial column: 422 claim-needs-serial); a row without a serial is a FAIL "
        "missing-field, and an unknown device or a wrong proof is a FAIL device-not-found counted toward "
        "your account's claim failure budget (429 too-many-attempts when spent)."
    ),
    action="jobs.create",
    process="JOB",
    raw_body=UPLOAD_TYPES,
    max_body=MAX_UPLOAD,
    status=202,
    responses=TOO_MANY_CLAIMS,
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
        raise invalid("invalid-query", "The job name is at most 128 characters.", preview(name))
    wanted = [a for a in (_query_param(req, "actions", required=True) or "").split(",") if a.strip()]
    actions = rules.validate_action_set(wanted)
    rules.authorize_actions(req.actor.role, actions)
    account_id = _query_param(req, "account_id")
    if account_id is not None and not (len(account_id) == 8 and ascii_int(account_id, 0, 99_999_999) is not None):
        raise invalid("invalid-query", "account_id is an 8-digit account id.", preview(account_id))
    site = _query_param(req, "site_id")
    site_id = None if site is None else ascii_int(site, 1, ID_MAX)
    if site is not None and site_id is None:
        raise invalid("invalid-query", "site_id is a positive integer.", preview(site))
    ctx = await _target(req, actions, account_id, site_id)
    media = req.content_type.partition(";")[0].strip().lower()
    if req.content_type and media not in _CSV_ALIASES:
        raise file_error("job-file-not-csv", f"The upload is sent as {media}; send it as text/csv. {NOT_CSV}", media)
    claim = "claim" in actions
    if claim:
        check_claim_budget(req)  # DEV-3: before the file is read (`proof`)
    # A 10 MiB file takes a moment to parse: off the event loop, so other requests go on.
    rows = await asyncio.to_thread(parse_selection_csv, req.raw or b"", claim=claim)
    if claim:
        macs, row_of, refused = await prove_claims(req, rows)
    else:
        macs, row_of, refused = await resolve_rows(req.session, req.actor, rows, anywhere=False)
    params: dict[str, Any] = {
        "selection": "macs",
        "source": "file",
        "label_ids": [],
        "context": context_json(ctx),
        "actor": asdict(req.actor),
        "macs": macs,
        "rows": row_of,
        "refused": len(refused),  # results from the start: where the runner goes on (`runner`)
    }
    if claim:
        params["proof"] = PROOF
    return await _open_job(req, actions=actions, name=name, params=params, total=len(rows), refused=refused)
