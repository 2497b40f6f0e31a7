"""Signed webhooks (issue 16): the outbox (events queued in the transaction of their change) and
the delivery loop (signed POSTs, retries with back-off, the delivery log).

Decisions:
- Queueing: an event becomes one `webhook_deliveries` row per enabled webhook of its account or
  of an ancestor (`server.domain.webhooks`) subscribed to its type, in the caller's
  transaction — nothing for accounts without such a webhook. The enrollment writer asks with
  ONE indexed query per group-commit batch that holds events (`queue_events`); an admin call
  or a job through its ORM session (`queue_event`, and `Job` rows that get `finished_at`, caught
  by a `before_flush` listener so every way a job ends is covered without hooks in each).
- Delivery runs outside every transaction: due rows are claimed with a conditional UPDATE
  (`next_attempt_at` moved one lease ahead, so two servers sharing PostgreSQL do not send the
  same attempt at once), POSTed concurrently (at most `CONCURRENCY` at a time), each with its
  own timeout, and each attempt's outcome is written in a short transaction of its own. A slow
  or silent receiver therefore holds no lock and delays no enrollment — only its own delivery.
- Time is the server's clock (`ServerContext.clock`), so tests drive retries by moving it;
  `deliver_due` runs one round (tests call it), `delivery_loop` runs rounds every `interval`
  seconds or at once when `wake()` is called (after an enrollment batch or a call queued
  events). At least once: a server that stops between the POST and its record sends again.
- Redirects are not followed (a 3xx is a failed attempt); the receiver's answer body is not
  read beyond the status; errors recorded are the exception's type and a short text, which
  carry no secret (the secret only ever goes into the signature header's HMAC).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import aiohttp
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, attributes

from server.context import system_clock
from server.domain import webhooks as rules
from server.domain.enrollment.decision import Decision
from server.domain.enrollment.facts import DeviceRecord
from server.domain.enrollment.rule import aware_or_none
from server.store.db import Store
from server.store.models import Account, Job, Webhook, WebhookAttempt, WebhookDelivery

log = logging.getLogger("enrollab.webhooks")

CONCURRENCY = 16
BATCH = 100
LEASE = timedelta(seconds=rules.ATTEMPT_TIMEOUT_SECONDS + 60)
USER_AGENT = "enrollab-webhooks/1"


class PendingEvent(NamedTuple):
    """One event to queue: filed under `account_id` (None: the platform's) whose path is `account_path`."""

    type: str
    account_id: str | None
    account_path: str | None
    data: Mapping[str, Any]
    created_at: datetime


# --- queueing -------------------------------------------------------------------------------------


# Built once (SQLAlchemy caches the compiled form): the enrollment writer runs it per batch.
_HOOKS = select(Webhook.id, Webhook.account_id, Webhook.events).where(
    Webhook.account_id.in_(bindparam("ids", expanding=True)), Webhook.enabled.is_(True)
)
_ROOTS = select(Account.id).where(Account.parent_id.is_(None))


def _targets(execute: Callable[..., Any], events: Sequence[PendingEvent]) -> list[list[tuple[int, str]]]:
    """Per event, the (webhook id, account id) of the enabled webhooks that hear it: one query for
    all events (plus one for the platform's id when an event is filed under no account)."""
    ids: set[str] = set()
    rootless = False
    for e in events:
        path_ids = rules.account_ids_of_path(e.account_path)
        ids.update(path_ids)
        rootless = rootless or not path_ids
    root: list[str] = []
    if rootless:
        root = [row[0] for row in execute(_ROOTS)]
        ids.update(root)
    if not ids:
        return [[] for _ in events]
    hooks = list(execute(_HOOKS, {"ids": sorted(ids)}))
    if not hooks:
        return [[] for _ in events]
    answer = []
    for e in events:
        hears = set(rules.account_ids_of_path(e.account_path)) or set(root)
        answer.append(
            [(h.id, h.account_id) for h in hooks if h.account_id in hears and rules.subscribed(h.events, e.type)]
        )
    return answer


def _rows(events: Sequence[PendingEvent], targets: list[list[tuple[int, str]]]) -> list[dict[str, Any]]:
    rows = []
    for e, hooks in zip(events, targets, strict=True):
        if not hooks:
            continue
        event_id = rules.new_id("evt")
        body = rules.event_body(event_id, e.type, e.created_at, e.account_id, e.data)
        for webhook_id, _ in hooks:
            rows.append(
                {
                    "webhook_id": webhook_id,
                    "delivery_id": rules.new_id("dlv"),
                    "event_id": event_id,
                    "event": e.type,
                    "account_id": e.account_id,
                    "body": body,
                    "status": rules.PENDING,
                    "attempts": 0,
                    "created_at": e.created_at,
                    "next_attempt_at": e.created_at,
                }
            )
    return rows


def queue_events(conn: Connection, events: Sequence[PendingEvent]) -> int:
    """Queue `events` in the caller's Core transaction (the enrollment writer); how many deliveries."""
    if not events:
        return 0
    rows = _rows(events, _targets(conn.execute, events))
    if rows:
        conn.execute(insert(WebhookDelivery), rows)
    return len(rows)


def queue_event_sync(session: Session, pending: PendingEvent) -> list[WebhookDelivery]:
    """Queue one event through an ORM session (sync side: flush listeners)."""
    with session.no_autoflush:
        targets = _targets(session.execute, [pending])
    deliveries = [WebhookDelivery(**row) for row in _rows([pending], targets)]
    session.add_all(deliveries)
    if deliveries:
        session.info["webhooks_queued"] = True
    return deliveries


async def queue_event(session: Any, pending: PendingEvent) -> list[WebhookDelivery]:
    """Queue one event in an admin call's transaction (`AsyncSession`)."""
    return await session.run_sync(lambda s: queue_event_sync(s, pending))


# --- job.finished and import.failed: every Job row that gets finished_at ---------------------------


def job_events(job: Job, account_path: str | None) -> list[PendingEvent]:
    """`job.finished` for every ended job; `import.failed` too for an import with rejected rows or FAIL."""
    summary = dict(job.summary or {})
    counts = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for key in ("error", "reason"):
        if isinstance(summary.get(key), str):
            counts[key] = summary[key]
    at = job.finished_at or system_clock()
    data = {
        "job_id": job.id,
        "name": job.name,
        "kind": job.kind,
        "status": job.status,
        "actions": list(job.actions or []),
        "created_by": job.created_by,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": at.isoformat(),
        "summary": counts,
    }
    events = [PendingEvent(rules.EventType.JOB_FINISHED.value, job.account_id, account_path, data, at)]
    if job.kind == "import" and (job.status == "FAIL" or int(summary.get("rejected", 0) or 0) > 0):
        params = dict(job.params or {})
        failed = {
            "job_id": job.id,
            "name": job.name,
            "filename": params.get("filename"),
            "status": job.status,
            "imported": summary.get("imported", 0),
            "rejected": summary.get("rejected", 0),
            "errors": summary.get("errors", 0),
        }
        events.append(PendingEvent(rules.EventType.IMPORT_FAILED.value, job.account_id, account_path, failed, at))
    return events


def _just_finished(job: Job) -> bool:
    history = attributes.get_history(job, "finished_at")
    added, deleted = list(history.added or ()), list(history.deleted or ())
    return bool(added) and added[0] is not None and not any(deleted)


@event.listens_for(Session, "after_flush")
def _jobs_finished(session: Session, _context: Any) -> None:
    """A job that ends (any code path that sets `finished_at`): its events are computed here,
    where its id is known and its history still shows the change, and queued after the flush
    (commit flushes again, so they commit with the job)."""
    ended = [obj for obj in (*session.new, *session.dirty) if isinstance(obj, Job) and _just_finished(obj)]
    if not ended:
        return
    waiting: list[PendingEvent] = session.info.setdefault("webhook_events", [])
    for job in ended:
        path = session.execute(select(Account.path).where(Account.id == job.account_id)).scalar()
        waiting.extend(job_events(job, path))


@event.listens_for(Session, "after_flush_postexec")
def _queue_job_events(session: Session, _context: Any) -> None:
    waiting: list[PendingEvent] = session.info.pop("webhook_events", [])
    for pending in waiting:
        queue_event_sync(session, pending)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop("webhooks_queued", False):
        wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("webhooks_queued", None)
    session.info.pop("webhook_events", None)


# --- device.enrolled and device.locked-out: what an enrollment decision caused ----------------------


def webhook_events(
    decision: Decision, device: DeviceRecord | None, paths: Mapping[str, str | None], at: datetime
) -> list[PendingEvent]:
    """ENR-2: a redirect answer is `device.enrolled`; LCK-2: a wrong code that sets a new lock is
    `device.locked-out`. Filed under the account the audit entry names (the holder or the code's
    account), else the device's owner, else the platform's. No URL is sent (it may hold credentials)."""
    updates = decision.device_updates
    account = decision.audit.account_id or (device.owner_id if device is not None else None)
    path = paths.get(account) if account else None
    base: dict[str, Any] = {
        "mac": decision.audit.mac,
        "serial": device.serial if device is not None else None,
        "model": device.model if device is not None else None,
    }
    if decision.result == "redirect":
        claim = updates.claim if updates is not None else None
        data = {
            **base,
            "firmware": updates.firmware if updates is not None else None,
            "site_id": claim.site_id if claim is not None else (device.site_id if device is not None else None),
            "reason": decision.audit.reason,
            "by_code": decision.consume_code is not None or decision.audit.reason == "code-enrolled",
        }
        return [PendingEvent(rules.EventType.DEVICE_ENROLLED.value, account, path, data, at)]
    lock = updates.lock if updates is not None else None
    newly_locked = (
        lock is not None
        and lock.locked_until is not None
        and device is not None
        and aware_or_none(device.locked_until) != lock.locked_until
    )
    if newly_locked:
        assert lock is not None and lock.locked_until is not None
        data = {**base, "failed_attempts": lock.failed, "locked_until": lock.locked_until.isoformat(),
                "reason": decision.audit.reason}
        return [PendingEvent(rules.EventType.DEVICE_LOCKED_OUT.value, account, path, data, at)]
    return []


# --- delivery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    id: int
    delivery_id: str
    event: str
    body: str
    attempts: int
    url: str
    secret: str
    webhook_id: int


@dataclass(frozen=True)
class _Result:
    due: _Due
    at: datetime
    status: int | None
    error: str | None
    duration_ms: int


async def _claim(store: Store, now: datetime, limit: int, only: int | None) -> list[_Due]:
    # A read first: with nothing due no write transaction is opened (SQLite's write lock is the
    # enrollment writer's).
    async with store.reading() as r:
        due = select(WebhookDelivery.id).where(
            WebhookDelivery.status == rules.PENDING, WebhookDelivery.next_attempt_at <= now
        )
        if only is not None:
            due = due.where(WebhookDelivery.id == only)
        if await r.scalar(due.limit(1)) is None:
            return []
    async with store.transaction() as s:
        stmt = (
            select(WebhookDelivery, Webhook.url, Webhook.secret)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == rules.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                Webhook.enabled.is_(True),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        if only is not None:
            stmt = stmt.where(WebhookDelivery.id == only)
        found = list(await s.execute(stmt))
        claimed = []
        for d, url, secret in found:
            taken = await s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == d.id,
                    WebhookDelivery.status == rules.PENDING,
                    WebhookDelivery.next_attempt_at == d.next_attempt_at,
                )
                .values(next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                claimed.append(_Due(d.id, d.delivery_id, d.event, d.body, d.attempts, url, secret, d.webhook_id))
        return claimed


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:256]


async def _post(http: aiohttp.ClientSession, due: _Due, now: datetime, timeout: float) -> _Result:
    body = due.body.encode()
    stamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        rules.EVENT_HEADER: due.event,
        rules.DELIVERY_HEADER: due.delivery_id,
        rules.SIGNATURE_HEADER: rules.signature_header(due.secret, stamp, body),
    }
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            async with http.post(due.url, data=body, headers=headers, allow_redirects=False) as answer:
                status = answer.status
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = _short(exc)
    return _Result(due, now, status, error, int((time.monotonic() - started) * 1000))


async def _record(store: Store, result: _Result) -> str:
    due = result.due
    number = due.attempts + 1
    verdict = rules.outcome(result.status) if result.error is None else "retry"
    async with store.transaction() as s:
        values: dict[str, Any] = {
            "attempts": number,
            "last_attempt_at": result.at,
            "last_status": result.status,
            "last_error": result.error or (None if verdict == "delivered" else f"HTTP {result.status}"),
        }
        if verdict == "delivered":
            values.update(status=rules.DELIVERED, delivered_at=result.at, next_attempt_at=None)
        elif verdict == "gone":
            values.update(status=rules.FAILED, next_attempt_at=None)
            await s.execute(
                update(Webhook)
                .where(Webhook.id == due.webhook_id)
                .values(enabled=False, disabled_reason="the receiver answered 410 Gone", updated_at=result.at)
            )
        else:
            again = rules.next_attempt(number, result.at)
            values.update(status=rules.PENDING if again else rules.FAILED, next_attempt_at=again)
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == due.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        s.add(
            WebhookAttempt(
                delivery_id=due.id,
                number=number,
                at=result.at,
                status=result.status,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        )
    return verdict


async def deliver_due(
    store: Store,
    clock: Callable[[], datetime] = system_clock,
    *,
    timeout: float = rules.ATTEMPT_TIMEOUT_SECONDS,
    limit: int = BATCH,
    only: int | None = None,
) -> list[str]:
    """One round: claim the due deliveries, POST them concurrently, record each attempt. Answers
    each attempt's verdict (`delivered`, `retry`, `gone`). `only`: that delivery row alone."""
    due = await _claim(store, clock(), limit, only)
    if not due:
        return []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(d: _Due, http: aiohttp.ClientSession) -> str:
        async with gate:
            result = await _post(http, d, clock(), timeout)
        return await _record(store, result)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        return list(await asyncio.gather(*(one(d, http) for d in due)))


_wakers: set[asyncio.Event] = set()


def wake() -> None:
    """Start a delivery round at once in every loop of this process (events were queued)."""
    for flag in list(_wakers):
        flag.set()


async def _attempt(store: Store, http: aiohttp.ClientSession, due: _Due, clock: Callable[[], datetime],
                   timeout: float) -> str:
    result = await _post(http, due, clock(), timeout)
    return await _record(store, result)


async def delivery_loop(
    store: Store,
    clock: Callable[[], datetime] = system_clock,
    *,
    interval: float = 5.0,
    timeout: float = rules.ATTEMPT_TIMEOUT_SECONDS,
) -> None:
    """Deliver until cancelled: claim what is due every `interval` seconds, or at once after
    `wake()`, and send each claimed delivery as a task of its own (at most `CONCURRENCY` in
    flight), so a receiver that hangs until its timeout holds up no other delivery."""
    flag = asyncio.Event()
    _wakers.add(flag)
    flying: set[asyncio.Task[str]] = set()

    def settled(task: asyncio.Task[str]) -> None:
        flying.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a webhook delivery attempt failed to record: %s", _short(task.exception()))  # type: ignore[arg-type]
        flag.set()  # room for more

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            while True:
                flag.clear()
                room = CONCURRENCY - len(flying)
                if room > 0:
                    try:
                        for due in await _claim(store, clock(), room, None):
                            task = asyncio.ensure_future(_attempt(store, http, due, clock, timeout))
                            flying.add(task)
                            task.add_done_callback(settled)
                    except Exception:
                        log.exception("claiming webhook deliveries failed; trying again later")
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # arrives as the flag is set, and the loop would outlive the server's shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await flag.wait()
    finally:
        _wakers.discard(flag)
        for task in list(flying):
            task.cancel()
        if flying:  # let each attempt end before the store they record into closes
            await asyncio.wait(list(flying), timeout=timeout)
