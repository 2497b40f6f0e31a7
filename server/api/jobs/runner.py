"""Running a bulk device job in the background (DEV-9, DEV-10, DEV-12).

Decisions:
- A job runs in transactions of `BATCH` devices. Each transaction locks the job row first, then
  the batch's device rows; it writes the devices' changes, one result per device (SUCCESS, or
  FAIL with the rule's reason), the job's counts and its heartbeat, and commits them together.
  So a device is either wholly changed and has its result, or untouched and has none, whenever
  the server stops; and the counts always equal the result rows. The job ends COMPLETE when
  every device succeeded and FAIL when any failed (the others keep their changes).
- Where to go on is read from the job row each batch, never kept only in memory: a `macs` job's
  next MAC is at `done - refused` in its list (an upload's refused rows are results from the
  start, `params.refused`), a `labels` or `all` job pages through its selection in MAC order
  after the greatest MAC it has a result for. A runner that takes over a job after a crash
  (`recovery`) therefore goes on exactly where the last committed batch stopped.
- Ownership: the job row names the process running it (`runner_id` = `RUNNER_ID`, host, pid and
  a random token). A runner stops at its next batch when the job was closed meanwhile or
  another process took it over, so two processes never both work on a job.
- Claim finds devices nobody holds yet; other actions only those in your hierarchy. A claim job's
  MACs were proven when it was created (`proof`, params `proof`); one without that mark (stored
  before claim proofs) claims nothing and ends FAIL `claim-needs-serial`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.actor import Actor
from server.api.devices import Notices, apply_actions, scope_devices, state_of
from server.api.jobs.proof import NEEDS_SERIAL, PROOF, not_proven
from server.context import ServerContext
from server.domain import devices as rules
from server.domain.errors import DomainError, not_found
from server.store.models import Device, DeviceLabel, Job, JobResult

log = logging.getLogger("enrollab.jobs")

BATCH = 500  # devices per background transaction
COUNTS = ("done", "succeeded", "failed")

# Which process runs a job: `host:pid:token` (at most 64 characters, the column's width). The
# host and pid let a server starting on the same host see at once that a job's process is gone
# (`recovery`); the token tells this process from an earlier one that had the same pid.
HOST = socket.gethostname()[:40]
RUNNER_ID = f"{HOST}:{os.getpid()}:{secrets.token_hex(6)}"
# (database URL, job id) of the jobs this process is running; the sweep leaves them alone.
_live: set[tuple[str, int]] = set()


def live_key(ctx: ServerContext, job_id: int) -> tuple[str, int]:
    return (ctx.store.url, job_id)


def is_live(ctx: ServerContext, job_id: int) -> bool:
    return live_key(ctx, job_id) in _live


def selected_devices(actor: Actor, params: dict[str, Any]) -> Select[Any]:
    """The devices a labels or all job acts on (macs jobs walk their list instead)."""
    if params["selection"] == "all":
        return select(Device).where(Device.owner_id == actor.acting_id)
    carries = exists().where(DeviceLabel.mac == Device.mac, DeviceLabel.label_id.in_(params["label_ids"]))
    return scope_devices(select(Device), actor).where(carries)


def start_job(ctx: ServerContext, job_id: int) -> None:
    """Run a job this process owns in the background; marked live at once, so that no sweep
    takes it for an orphan before its task first runs."""
    start_live(ctx, job_id, run_device_job)


def start_live(ctx: ServerContext, job_id: int,
               runner: Callable[[ServerContext, int], Coroutine[Any, Any, None]]) -> None:
    """Run `runner(ctx, job_id)` in the background unless it already runs here; marked live at
    once (`start_job`)."""
    key = live_key(ctx, job_id)
    if key in _live:
        return
    _live.add(key)
    ctx.spawn(runner(ctx, job_id))


async def run_live(ctx: ServerContext, job_id: int, body: Callable[[], Awaitable[Any]], what: str = "job") -> None:
    """Run a job's `body` while it is marked live here; a crash ends the job FAIL
    `internal-error` (never IN PROGRESS for ever) and is logged."""
    key = live_key(ctx, job_id)
    _live.add(key)
    try:
        await body()
    except Exception as exc:
        log.exception("%s %s failed", what, job_id)
        async with ctx.store.transaction() as s:
            job = await lock_job(s, job_id)
            if ours(job):
                assert job is not None
                job.status = "FAIL"
                job.summary = {**job.summary, "error": "internal-error", "detail": type(exc).__name__}
                job.finished_at = ctx.clock()
    finally:
        _live.discard(key)


async def run_device_job(ctx: ServerContext, job_id: int) -> None:
    """DEV-9, DEV-10: apply a job's actions to its devices, BATCH per transaction, then close it."""
    await run_live(ctx, job_id, lambda: _run(ctx, job_id))


async def lock_job(s: AsyncSession, job_id: int) -> Job | None:
    # The job row is locked first in every runner transaction, then devices: one order, no
    # deadlock; and the sweep skips a locked row, so a batch in progress is never taken over.
    return await s.scalar(select(Job).where(Job.id == job_id).with_for_update())


def ours(job: Job | None) -> bool:
    """The job runs here: in progress under this process's runner id."""
    return job is not None and job.status == "IN PROGRESS" and job.runner_id == RUNNER_ID


async def _after(s: AsyncSession, job_id: int) -> str:
    """A labels or all job's last device: the greatest MAC it has a result for."""
    return await s.scalar(select(func.max(JobResult.subject)).where(JobResult.job_id == job_id)) or ""


async def _run(ctx: ServerContext, job_id: int) -> None:
    async with ctx.store.transaction() as s:
        job = await lock_job(s, job_id)
        if not ours(job):
            return
        assert job is not None
        actions, params = list(job.actions), dict(job.params)
        job.heartbeat_at = ctx.clock()
        after = "" if params["selection"] == "macs" else await _after(s, job_id)
    actor = Actor(**params["actor"])
    action_ctx = rules.ActionContext(**params["context"])
    notices = Notices()
    macs: list[str] = params.get("macs") or []
    refused = int(params.get("refused", 0))
    if "claim" in actions and params.get("proof") != PROOF:
        # DEV-3: a claim job stored before claim proofs named its devices by MAC alone; claim nothing.
        await _close(ctx, job_id, {"error": "claim-needs-serial", "detail": NEEDS_SERIAL})
        return
    while True:
        async with ctx.store.transaction() as s:
            s.info.update(clock=ctx.clock, actor=actor, via=f"job {job_id}")  # the timeline's who and when
            job = await lock_job(s, job_id)
            if not ours(job):
                why = "deleted" if job is None else job.status if job.status != "IN PROGRESS" else "taken over"
                log.warning("job %s was closed or taken over while it ran (%s); stopping", job_id, why)
                return
            assert job is not None
            counts = {name: int(job.summary.get(name, 0)) for name in COUNTS}
            if params["selection"] == "macs":
                position = counts["done"] - refused
                batch = macs[position : position + BATCH]
                if not batch:
                    break
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
        if not ours(job):
            return
        assert job is not None
        job.status = "FAIL" if int(job.summary.get("failed", 0)) else "COMPLETE"
        job.finished_at = job.heartbeat_at = ctx.clock()
        await notices.queue(s, actor.login, ctx.clock())


async def _close(ctx: ServerContext, job_id: int, why: dict[str, str]) -> None:
    async with ctx.store.transaction() as s:
        job = await lock_job(s, job_id)
        if not ours(job):
            return
        assert job is not None
        job.status = "FAIL"
        job.summary = {**job.summary, **why}
        job.finished_at = job.heartbeat_at = ctx.clock()


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
        if row is None and "claim" in actions:
            err = not_proven(mac)  # a claim job's unknown device reads as an unproven one (`proof`)
        elif row is None:
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
