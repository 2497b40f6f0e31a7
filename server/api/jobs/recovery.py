"""Jobs a stopped server left IN PROGRESS (DEV-10).

Decisions:
- Several `enrollab serve` processes may share one database, so a server cannot tell a dead
  job from another server's live one by its status. The runner stamps the job with its
  process's `RUNNER_ID` and a heartbeat (`runner`). A sweep — at server start and every
  `SWEEP_SECONDS` — fails IN PROGRESS jobs whose heartbeat is older than `STALE_AFTER` (by the
  server's clock): status FAIL, `summary.reason` `interrupted` and a `summary.note`; the devices
  already processed keep their results and changes, the others were not touched. It never
  fails a job this process is still running, and skips job rows another transaction holds
  locked (a batch in progress). Every background job must therefore heartbeat at least every
  `STALE_AFTER`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import timedelta

from aiohttp import web
from sqlalchemy import and_, or_, select

from server.api.jobs.runner import RUNNER_ID, _live
from server.context import ServerContext
from server.store.models import Job

log = logging.getLogger("enrollab.jobs")

STALE_AFTER = timedelta(minutes=5)
SWEEP_SECONDS = 60.0


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
