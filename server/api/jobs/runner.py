"""Running a bulk device job in the background (DEV-9, DEV-10, DEV-12).

Decisions:
- A job runs in transactions of `BATCH` devices; each device gets a result (SUCCESS, or FAIL
  with the rule's reason) in the same transaction as its change. The job ends COMPLETE when
  every device succeeded and FAIL when any failed (the others keep their changes).
- A `macs` job walks its list; a `labels` or `all` job pages through its selection in MAC
  order. Claim finds devices nobody holds yet; other actions only those in your hierarchy.
- Each process has a random `RUNNER_ID`; the runner stamps the job with it and writes
  `heartbeat_at` when it starts and after every batch (see `recovery`). A batch holds its job's
  row locked, and a runner whose job was closed meanwhile stops at its next batch.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices import Notices, apply_actions, scope_devices, state_of
from server.context import ServerContext
from server.domain import devices as rules
from server.domain.errors import DomainError, not_found
from server.store.models import Device, DeviceLabel, Job, JobResult

log = logging.getLogger("enrollab.jobs")

BATCH = 500  # devices per background transaction
COUNTS = ("done", "succeeded", "failed")

# One random id per server process: which process runs a job (see `recovery`).
RUNNER_ID = secrets.token_hex(8)
# (id(ctx), job id) of the jobs this process is running right now; the sweep leaves them alone.
_live: set[tuple[int, int]] = set()


def selected_devices(actor: Actor, params: dict[str, Any]) -> Select[Any]:
    """The devices a labels or all job acts on (macs jobs walk their list instead)."""
    if params["selection"] == "all":
        return select(Device).where(Device.owner_id == actor.acting_id)
    carries = exists().where(DeviceLabel.mac == Device.mac, DeviceLabel.label_id.in_(params["label_ids"]))
    return scope_devices(select(Device), actor).where(carries)


async def run_device_job(ctx: ServerContext, job_id: int) -> None:
    """DEV-9, DEV-10: apply a job's actions to its devices, BATCH per transaction, then close it."""
    key = (id(ctx), job_id)
    _live.add(key)
    try:
        await _run(ctx, job_id)
    except Exception as exc:  # a crash must not leave the job IN PROGRESS for ever
        log.exception("job %s failed", job_id)
        async with ctx.store.transaction() as s:
            job = await lock_job(s, job_id)
            if job is not None and job.status == "IN PROGRESS":
                job.status = "FAIL"
                job.summary = {**job.summary, "error": "internal-error", "detail": type(exc).__name__}
                job.finished_at = ctx.clock()
    finally:
        _live.discard(key)


async def lock_job(s: AsyncSession, job_id: int) -> Job | None:
    # The job row is locked first in every runner transaction, then devices: one order, no
    # deadlock; and the sweep skips a locked row, so a batch in progress is never failed.
    return await s.scalar(select(Job).where(Job.id == job_id).with_for_update())


async def _run(ctx: ServerContext, job_id: int) -> None:
    async with ctx.store.transaction() as s:
        job = await lock_job(s, job_id)
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
            job = await lock_job(s, job_id)
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
                        selected_devices(actor, params)
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
        job = await lock_job(s, job_id)
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
