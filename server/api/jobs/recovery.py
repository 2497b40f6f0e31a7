"""Jobs whose server stopped while they ran (DEV-10): taken over and resumed, or failed.

Decisions:
- Several `enrollab serve` processes may share one database, so a server cannot tell a dead
  job from another server's live one by its status. The job row names its process
  (`runner_id`: host, pid, token) and carries a lease, `heartbeat_at`: the runner writes it with
  every batch, and every `SWEEP_SECONDS` the sweep renews it for each job this process runs.
- A job is orphaned when its process is known to be gone — it ran on this host and its pid is
  no process any more, or is this process's pid under another token (a restarted container is
  pid 1 again) — or when its lease is older than `STALE_AFTER` (by the server's clock; another
  host's process, or a pid that was reused). A process never takes its own live jobs.
- The sweep runs at server start and every `SWEEP_SECONDS`. An orphaned device job is taken
  over (`runner_id` set to this process, `summary.resumed` counted up) and resumed: the runner
  goes on after the last committed batch (`runner`), so no device is done twice or skipped. A
  job that was already resumed `MAX_RESUMES` times (perhaps it is what stops the server), or
  that cannot be resumed (no stored actor or context; an upload job from before
  `params.refused` was stored) is failed instead: status FAIL, `summary.reason` `interrupted`
  and a `summary.note`; the devices already processed keep their results and changes, the others
  were not touched.
- The sweep skips job rows another transaction holds locked (a batch in progress), and takes
  each job over with its row locked, so two starting servers never both resume one job; a
  runner whose job was taken over meanwhile stops at its next batch.
- A job's claim and association notifications (NTF-1) are queued when it ends, for the devices
  its last run changed: a resumed job's notification names the devices changed after the
  resume; its results name them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import select, update

from server.api.jobs.runner import HOST, RUNNER_ID, _live, is_live, start_job
from server.context import ServerContext
from server.store.models import Job

log = logging.getLogger("enrollab.jobs")

STALE_AFTER = timedelta(minutes=2)
SWEEP_SECONDS = 15.0
MAX_RESUMES = 3
# Job kinds other than `devices` that can be resumed, and what starts their runner (DEP-1's
# `order-batch` registers itself in `server.api.order_runner`).
RESUMERS: dict[str, Callable[[ServerContext, int], None]] = {}


@dataclass
class Sweep:
    """What one sweep did: the jobs it resumed and the jobs it failed as interrupted."""

    resumed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # a process of another user, or no way to ask: alive as far as we know
    return False


def process_gone(runner_id: str | None) -> bool:
    """True when `runner_id` names a process of this host that no longer runs (module docstring)."""
    host, _, rest = (runner_id or "").partition(":")
    pid_text, _, token = rest.partition(":")
    if host != HOST or not pid_text.isdigit() or not token or runner_id == RUNNER_ID:
        return False
    pid = int(pid_text)
    return pid == os.getpid() or _pid_gone(pid)


def orphaned(ctx: ServerContext, job: Job, cutoff: datetime) -> str | None:
    """Why `job` has no live runner, or None while it may have one."""
    if job.runner_id == RUNNER_ID:
        if is_live(ctx, job.id):
            return None  # slow, not dead: this process is running it
    elif process_gone(job.runner_id):
        return f"its server process ({job.runner_id}) is gone"
    last = job.heartbeat_at or job.created_at
    if last < cutoff:
        return f"no heartbeat from its server (runner {job.runner_id or 'unknown'}) since {last.isoformat()}"
    return None


def resumable(job: Job) -> bool:
    if job.kind in RESUMERS:
        return True
    params = job.params or {}
    if job.kind != "devices" or not {"actor", "context", "selection"} <= params.keys():
        return False
    return params.get("source") != "file" or "refused" in params


async def sweep_interrupted_jobs(ctx: ServerContext) -> Sweep:
    """DEV-10: renew this process's leases; resume or fail the IN PROGRESS jobs whose server
    stopped (module docstring). The resumed jobs' runners are started before it returns."""
    now = ctx.clock()
    cutoff = now - STALE_AFTER
    done = Sweep()
    kinds: dict[int, str] = {}
    mine = [job_id for url, job_id in list(_live) if url == ctx.store.url]
    async with ctx.store.transaction() as s:
        if mine:
            await s.execute(
                update(Job)
                .where(Job.id.in_(mine), Job.runner_id == RUNNER_ID, Job.status == "IN PROGRESS")
                .values(heartbeat_at=now)
            )
        rows = await s.execute(
            select(Job.id, Job.runner_id, Job.heartbeat_at, Job.created_at).where(Job.status == "IN PROGRESS")
        )
        candidates = [
            job_id
            for job_id, runner_id, heartbeat_at, created_at in rows
            if not (runner_id == RUNNER_ID and is_live(ctx, job_id))
            and (process_gone(runner_id) or (heartbeat_at or created_at) < cutoff)
        ]
        for job_id in candidates:
            job = await s.scalar(
                select(Job).where(Job.id == job_id, Job.status == "IN PROGRESS").with_for_update(skip_locked=True)
            )
            why = None if job is None else orphaned(ctx, job, cutoff)
            if job is None or why is None:
                continue
            summary = dict(job.summary)
            resumes = int(summary.get("resumed", 0))
            if resumable(job) and resumes < MAX_RESUMES:
                summary["resumed"] = resumes + 1
                summary["resumed_at"] = now.isoformat()
                job.summary = summary
                job.runner_id, job.heartbeat_at = RUNNER_ID, now
                done.resumed.append(job.id)
                kinds[job.id] = job.kind
                log.warning("job %s resumed by %s: %s", job.id, RUNNER_ID, why)
                continue
            processed, total = summary.get("done", 0), summary.get("total", "?")
            stopped = f"; it stopped {resumes + 1} times" if resumes else ""
            summary["reason"] = "interrupted"
            summary["note"] = (
                f"The server running this job stopped: {why}{stopped}. {processed} of {total} devices were "
                "processed and keep their results; the others were not changed."
            )
            job.summary = summary
            job.status = "FAIL"
            job.finished_at = now
            done.failed.append(job.id)
            log.warning("job %s interrupted: %s", job.id, why)
    for job_id in done.resumed:
        RESUMERS.get(kinds[job_id], start_job)(ctx, job_id)
    return done


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
