"""DEP-1: processing a submitted batch in the background, like a bulk device job (DEV-10).

Decisions:
- A batch is a `Job` of kind `order-batch` (so `GET /jobs/{id}` and its exports show it, with a
  result per device) plus its `order_devices` rows. It runs in transactions of `BATCH` devices.
  Each transaction locks the job row first, then the devices, and writes together: each
  device's change, its outcome row, its job result, the job's counts and heartbeat. So a device
  is either wholly done (changed as decided, with its outcome) or untouched with no outcome —
  never half a device — whenever the server stops.
- Where to go on is the first device without an outcome, read from the store each time, so a
  runner that takes the job over after a restart (the jobs' recovery sweep, `RESUMERS`) goes on
  exactly there; after `MAX_RESUMES` takeovers the sweep fails it as interrupted instead, and
  its response then answers 409 `batch-interrupted`.
- The customer is looked up again for every transaction: a customer deleted or disabled while
  the batch runs makes the remaining devices `unknown-customer`, not an error of the batch.
- NTF-1: the customer's administrators get the Claiming Device and Associating Device emails of
  the devices a batch enrolled, one of each per transaction (up to `BATCH` devices, naming the
  first NOTIFY_MACS), written in the same transaction as the devices; "changed by" names the
  order system. A release (`RE`) sends none, as a disassociation through the API sends none.
- The job ends COMPLETE when every device succeeded (enrolled, already-enrolled, released) and
  FAIL otherwise; the response batch is available from then on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.devices import state_of, write_back
from server.api.devices.notices import Notices
from server.api.jobs.recovery import RESUMERS
from server.api.jobs.runner import lock_job, ours, run_live, start_live
from server.context import ServerContext
from server.domain import orders
from server.store.models import Account, Device, JobResult, OrderBatch, OrderDevice, OrderSystem, Site

BATCH = 500
KIND = "order-batch"


def start_order_batch(ctx: ServerContext, job_id: int) -> None:
    """Process a batch's job in the background (marked live at once, so no sweep takes it)."""
    start_live(ctx, job_id, run_order_batch)


RESUMERS[KIND] = start_order_batch  # a batch whose server stopped is resumed by the sweep


async def run_order_batch(ctx: ServerContext, job_id: int) -> None:
    async def steps() -> None:
        while await _step(ctx, job_id):
            pass

    await run_live(ctx, job_id, steps, "order batch job")


async def _parties(s: AsyncSession, batch: OrderBatch, system: OrderSystem, seller: Account) -> orders.Parties:
    customer = await s.get(Account, batch.customer_account)
    usable = (
        customer is not None
        and customer.type == "customer"
        and customer.enabled
        and customer.path.startswith(seller.path)
        and seller.enabled
    )
    has_profile = None
    if batch.site_id is not None:
        site = await s.get(Site, batch.site_id)
        usable = usable and site is not None and site.account_id == batch.customer_account
        has_profile = bool(site is not None and site.profile_id is not None)
    return orders.Parties(
        seller_id=system.account_id,
        customer_id=batch.customer_account,
        customer_usable=usable,
        site_id=batch.site_id,
        site_has_profile=has_profile,
        order_id=batch.order_id,
    )


async def _step(ctx: ServerContext, job_id: int) -> bool:
    """One transaction of up to BATCH devices; False once the batch is done (or not ours)."""
    async with ctx.store.transaction() as s:
        job = await lock_job(s, job_id)
        if not ours(job):
            return False
        assert job is not None
        batch = await s.scalar(select(OrderBatch).where(OrderBatch.job_id == job_id))
        if batch is None:  # its order system was deleted meanwhile
            job.status, job.finished_at = "FAIL", ctx.clock()
            job.summary = {**job.summary, "error": "batch-deleted"}
            return False
        pending = list(
            await s.scalars(
                select(OrderDevice)
                .where(OrderDevice.batch_pk == batch.id, OrderDevice.outcome.is_(None))
                .order_by(OrderDevice.position)
                .limit(BATCH)
            )
        )
        if not pending:
            job.status = "FAIL" if int(job.summary.get("failed", 0)) else "COMPLETE"
            job.finished_at = job.heartbeat_at = ctx.clock()
            return False
        system = await s.get(OrderSystem, batch.order_system_id)
        seller = await s.get(Account, system.account_id) if system else None
        assert system is not None and seller is not None
        parties = await _parties(s, batch, system, seller)
        macs = sorted({d.mac for d in pending})
        seen = set(
            await s.scalars(
                select(OrderDevice.mac).where(
                    OrderDevice.batch_pk == batch.id,
                    OrderDevice.position < pending[0].position,
                    OrderDevice.mac.in_(macs),
                )
            )
        )
        rows = {d.mac: d for d in await s.scalars(select(Device).where(Device.mac.in_(macs)).with_for_update())}
        notices = Notices()
        counts = _apply(s, job_id, pending, rows, parties, seen, notices)
        await notices.queue(s, f"order system {system.name}", ctx.clock())
        summary = dict(job.summary)
        for name, n in counts.items():
            summary[name] = int(summary.get(name, 0)) + n
        job.summary = summary
        job.heartbeat_at = ctx.clock()
        return True


def _apply(
    s: AsyncSession,
    job_id: int,
    pending: list[OrderDevice],
    rows: dict[str, Device],
    parties: orders.Parties,
    seen: set[str],
    notices: Notices,
) -> dict[str, int]:
    counts: dict[str, int] = {"done": 0, "succeeded": 0, "failed": 0}
    for od in pending:
        request = orders.BatchDevice(od.position, od.mac, od.serial, od.model, od.request_type)  # type: ignore[arg-type]
        row = rows.get(od.mac)
        before = state_of(row) if row else None
        outcome = orders.decide(request, before, parties, od.mac in seen)
        seen.add(od.mac)
        if outcome.state is not None and row is not None and before is not None:
            actions = ["disassociate"] if od.request_type == "RE" else ["claim", "associate", "activate"]
            if od.request_type == "EN" and parties.site_id is None:
                actions = ["claim", "associate"]
            write_back(row, outcome.state, actions)
            notices.add(before, outcome.state, actions, parties.customer_id)
        od.outcome, od.detail = outcome.outcome, outcome.detail
        counts["done"] += 1
        counts["succeeded" if outcome.succeeded else "failed"] += 1
        s.add(
            JobResult(
                job_id=job_id,
                subject=od.mac,
                row=od.position + 1,
                status="SUCCESS" if outcome.succeeded else "FAIL",
                reason=outcome.outcome,
                detail=outcome.detail,
            )
        )
    return counts


async def progress(s: AsyncSession, batch: OrderBatch) -> dict[str, Any]:
    """How far a batch is: processed devices and the count of each outcome so far."""
    rows = await s.execute(
        select(OrderDevice.outcome, func.count())
        .where(OrderDevice.batch_pk == batch.id, OrderDevice.outcome.is_not(None))
        .group_by(OrderDevice.outcome)
    )
    outcomes = {outcome: int(n) for outcome, n in rows}
    return {"processed": sum(outcomes.values()), "outcomes": outcomes}
