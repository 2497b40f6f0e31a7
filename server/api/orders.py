"""Admin API: order-driven enrollment batches (DEP-1) — submit, follow, fetch the response.

Who calls: an order system with its API token (`eos_…`, `order_auth`), for its own batches; or
an administrator of a seller account for an order system of its hierarchy, named by the query
parameter `order_system` (ACC-7; out of scope answers 404 like a missing one).

Decisions (docs/orders.md has the contract):
- Submit checks everything that can refuse the whole file before writing anything: the JSON,
  the envelope and its decryption (`wrong-key`, `ciphertext-truncated`; an order system with a
  key takes encrypted batches only, `encryption-required`), the dep-batch schema (every error
  with its JSON pointer, `invalid-batch`), the batch id, the customer account (`unknown-customer`)
  and the site (`unknown-site`, `site-without-profile`). A refused submission writes no batch,
  no device and no job (only the audit log's FAIL entry, LOG-1).
- Idempotency: a batch id is unique per order system. Submitting the same batch again (the
  same content, compared as canonical JSON after decryption, so a re-encryption is the same
  batch) answers 200 with the stored batch and `replayed: true`, and writes nothing. Other
  content under a used batch id is 409 `batch-id-reused`, and writes nothing.
- An accepted batch answers 202 and is processed in the background, device by device
  (`order_runner`); `GET /orders/batches/{batch_id}` shows its progress, and
  `GET …/response` answers the response batch once it is done (409 `batch-in-progress` before),
  encrypted with the order system's key when it has one.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, insert, select

from server.api.jobs.runner import RUNNER_ID
from server.api.order_runner import KIND, progress, start_order_batch
from server.api.order_systems import system_in_scope
from server.api.routing import Api, Reply, Req
from server.domain import inputs, order_envelope, orders
from server.domain.errors import DomainError, conflict, invalid, not_found
from server.domain.permissions import ORDER_SYSTEM
from server.store.models import Account, Job, OrderBatch, OrderDevice, OrderSystem, Site

api = Api()

_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ORDER_SYSTEM_QUERY = (("order_system", "administrators: the order system's id (an order system's token: its own)"),)
CHUNK = 1000


async def _system(req: Req) -> OrderSystem:
    """The order system a call is for: the caller itself, or `?order_system=` for an administrator."""
    if req.actor.role == ORDER_SYSTEM:
        assert req.actor.order_system_id is not None
        return await system_in_scope(req, req.actor.order_system_id)
    value = req.query("order_system")
    if value is None:
        raise invalid("order-system-required", "name the order system: ?order_system=ID (or call with its token)")
    number = inputs.ascii_int(value, 0, inputs.ID_MAX)  # ids are 32-bit: a bigger one names nothing
    if number is None:
        raise not_found("order-system-not-found", f"no order system {value[:20]!r} in your hierarchy")
    return await system_in_scope(req, number)


async def _batch(req: Req, system: OrderSystem) -> OrderBatch:
    batch_id = req.param("batch_id")
    batch = None
    if _BATCH_ID.fullmatch(batch_id):
        batch = await req.session.scalar(
            select(OrderBatch).where(OrderBatch.order_system_id == system.id, OrderBatch.batch_id == batch_id)
        )
    if batch is None:
        raise not_found("batch-not-found", f"no batch {batch_id[:64]!r} from order system {system.id}")
    return batch


async def batch_json(req: Req, batch: OrderBatch, **extra: Any) -> dict[str, Any]:
    job = await req.session.get(Job, batch.job_id) if batch.job_id else None
    done = await progress(req.session, batch)
    return {
        "batch_id": batch.batch_id,
        "order_system_id": batch.order_system_id,
        "order_id": batch.order_id,
        "customer_account": batch.customer_account,
        "site_id": batch.site_id,
        "encrypted": batch.encrypted,
        "submitted_at": batch.submitted_at,
        "job_id": batch.job_id,
        "status": job.status if job else "FAIL",
        "total": batch.total,
        **done,
        **extra,
    }


def _body(data: bytes) -> dict[str, Any]:
    """The body under the API's JSON rules (400 `invalid-json`, …), as for every JSON call: an object."""
    document = orders.load_document(data, "body")
    if not isinstance(document, dict):
        raise invalid("invalid-body", "body: the body is a JSON object, a dep-batch or a dep-envelope document")
    return document


def _plaintext_batch(document: dict[str, Any], system: OrderSystem) -> tuple[Any, bool]:
    """The batch document, decrypted when it came in an envelope; whole-file refusals raise."""
    if order_envelope.is_envelope(document):
        orders.check_schema(document, "dep-envelope", "invalid-envelope")
        plaintext = order_envelope.open_envelope(document, system.key)
        return orders.load_document(plaintext, "decrypted batch"), True
    if system.key is not None:
        raise invalid(
            "encryption-required",
            "This order system has a key: its batches must come encrypted (a dep-envelope document).",
        )
    return document, False


async def _check_parties(req: Req, system: OrderSystem, batch: orders.Batch) -> None:
    """ACC-7: the customer is a customer account in the order system's account's subtree, enabled."""
    seller = await req.session.get(Account, system.account_id)
    customer = await req.session.get(Account, batch.customer_account)
    if (
        seller is None
        or customer is None
        or customer.type != "customer"
        or not customer.path.startswith(seller.path)
        or not customer.enabled
    ):
        raise invalid(
            "unknown-customer",
            f"No enabled customer account {batch.customer_account} under this order system's account.",
            batch.customer_account,
            pointer="/customer_account",
        )
    if batch.site_id is not None:
        site = await req.session.get(Site, batch.site_id)
        if site is None or site.account_id != customer.id:
            raise invalid(
                "unknown-site", f"The customer has no site {batch.site_id}.", batch.site_id, pointer="/site_id"
            )
        if site.profile_id is None:
            raise invalid(
                "site-without-profile",
                "The site has no profile; devices cannot be associated with it (PRF-4).",
                batch.site_id,
                pointer="/site_id",
            )


@api.route(
    "POST",
    "/orders/batches",
    summary="Submit a device enrolment request batch (DEP-1): plain dep-batch JSON or a dep-envelope",
    action="orders.submit",
    process="DEVICE",
    raw_body=("application/json",),
    max_body=orders.MAX_BYTES,
    status=202,
    query=_ORDER_SYSTEM_QUERY,
    responses={
        "200": {"description": "the same batch again (idempotent): the stored batch, replayed true"},
        "409": {"description": "batch-id-reused: other content under a used batch id"},
        "422": {
            "description": "invalid-batch / invalid-envelope (errors: [{pointer, message}]), wrong-key, "
            "ciphertext-truncated, encryption-required, unknown-customer, unknown-site, site-without-profile"
        },
    },
)
async def submit_batch(req: Req) -> Any:
    body = _body(req.raw or b"")  # the body's JSON rules first, as for every JSON call
    system = await _system(req)
    document, encrypted = _plaintext_batch(body, system)
    batch = orders.parse_batch(document)
    stored = await req.session.scalar(
        select(OrderBatch).where(OrderBatch.order_system_id == system.id, OrderBatch.batch_id == batch.batch_id)
    )
    if stored is not None:
        if stored.digest != batch.digest:
            raise conflict(
                "batch-id-reused",
                f"Batch {batch.batch_id} was submitted before with other content; a new batch needs a new id.",
                batch.batch_id,
            )
        req.audit_message = f"order batch {batch.batch_id} of order system {system.id} submitted again: unchanged"
        return Reply(await batch_json(req, stored, replayed=True), 200)
    await _check_parties(req, system, batch)
    now = req.now
    job = Job(
        account_id=system.account_id,
        created_by=req.actor.login,
        name=f"order batch {batch.batch_id}"[:128],
        kind=KIND,
        actions=["order-batch"],
        params={"order_system_id": system.id, "batch_id": batch.batch_id},
        status="IN PROGRESS",
        summary={"total": len(batch.devices), "done": 0, "succeeded": 0, "failed": 0},
        created_at=now,
        heartbeat_at=now,
        runner_id=RUNNER_ID,
    )
    req.session.add(job)
    await req.session.flush()
    row = OrderBatch(
        order_system_id=system.id,
        batch_id=batch.batch_id,
        order_id=batch.order_id,
        customer_account=batch.customer_account,
        site_id=batch.site_id,
        digest=batch.digest,
        encrypted=encrypted,
        total=len(batch.devices),
        job_id=job.id,
        submitted_at=now,
    )
    req.session.add(row)
    await req.session.flush()
    for start in range(0, len(batch.devices), CHUNK):
        await req.session.execute(
            insert(OrderDevice),
            [
                {
                    "batch_pk": row.id,
                    "position": d.position,
                    "mac": d.mac,
                    "serial": d.serial,
                    "model": d.model,
                    "request_type": d.request_type,
                }
                for d in batch.devices[start : start + CHUNK]
            ],
        )
    ctx, job_id = req.ctx, job.id

    async def begin() -> None:
        start_order_batch(ctx, job_id)

    req.after_commit.append(begin)
    req.audit_account = system.account_id
    req.audit_message = (
        f"order batch {batch.batch_id} (order {batch.order_id}) of order system {system.id}: "
        f"{len(batch.devices)} devices for customer {batch.customer_account}, job {job.id}"
    )
    return Reply(await batch_json(req, row, replayed=False), 202)


@api.route(
    "GET",
    "/orders/batches",
    summary="An order system's batches, newest first (DEP-1)",
    action="orders.read",
    process="DEVICE",
    query=_ORDER_SYSTEM_QUERY,
)
async def list_batches(req: Req) -> Any:
    system = await _system(req)
    limit, offset = req.page()
    where = OrderBatch.order_system_id == system.id
    total = await req.session.scalar(select(func.count()).where(where))
    rows = await req.session.scalars(
        select(OrderBatch).where(where).order_by(OrderBatch.id.desc()).limit(limit).offset(offset)
    )
    return {"items": [await batch_json(req, b) for b in rows], "total": int(total or 0)}


@api.route(
    "GET",
    "/orders/batches/{batch_id}",
    summary="A batch's status and progress (DEP-1)",
    action="orders.read",
    process="DEVICE",
    query=_ORDER_SYSTEM_QUERY,
)
async def get_batch(req: Req) -> Any:
    system = await _system(req)
    return await batch_json(req, await _batch(req, system))


@api.route(
    "GET",
    "/orders/batches/{batch_id}/response",
    summary="The response batch (dep-response; a dep-envelope when the order system has a key) (DEP-1)",
    action="orders.read",
    process="DEVICE",
    query=_ORDER_SYSTEM_QUERY,
    responses={"409": {"description": "batch-in-progress: not every device was processed yet"}},
)
async def get_batch_response(req: Req) -> Any:
    system = await _system(req)
    batch = await _batch(req, system)
    job = await req.session.get(Job, batch.job_id) if batch.job_id else None
    if job is None or job.status == "IN PROGRESS":
        done = await progress(req.session, batch)
        raise DomainError(
            "batch-in-progress",
            f"Batch {batch.batch_id} is being processed: {done['processed']} of {batch.total} devices so far.",
            409,
            extra={"processed": done["processed"], "total": batch.total},
        )
    if await _unprocessed(req, batch):
        raise DomainError(
            "batch-interrupted",
            f"Batch {batch.batch_id} stopped before every device was processed (job {job.id}: {job.status}).",
            409,
        )
    devices = [
        orders.Answered(d.mac, d.serial, d.model, d.request_type, d.outcome or "invalid", d.detail)
        for d in await req.session.scalars(
            select(OrderDevice).where(OrderDevice.batch_pk == batch.id).order_by(OrderDevice.position)
        )
    ]
    document = orders.response_document(
        batch.batch_id,
        batch.order_id,
        batch.customer_account,
        batch.site_id,
        job.finished_at or req.now,
        devices,
    )
    if system.key is not None:
        return order_envelope.seal_json(document, system.key, "dep-response")
    return document


async def _unprocessed(req: Req, batch: OrderBatch) -> list[OrderDevice]:
    return list(
        await req.session.scalars(
            select(OrderDevice).where(OrderDevice.batch_pk == batch.id, OrderDevice.outcome.is_(None)).limit(1)
        )
    )
