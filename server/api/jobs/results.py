"""Reading jobs: the list, one job with its per-device (or per-row) results, and the export
(DEV-10). Every job of your hierarchy (ACC-7), import jobs as well as device jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select

from server.api.actor import Actor
from server.api.devices import export_response, job_json, to_csv
from server.api.routing import Api, Req, dumps
from server.api.scope import subtree_clause
from server.domain.errors import bad_request, not_found
from server.store.models import Account, Job, JobResult

api = Api()

RESULT_FIELDS = ("subject", "file", "row", "field", "status", "reason", "detail")


def _job_scope(actor: Actor) -> Select[Any]:
    return select(Job).join(Account, Account.id == Job.account_id).where(subtree_clause(actor, Account.path))


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
