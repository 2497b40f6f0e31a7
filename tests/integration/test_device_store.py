"""The enrollment hot path's store machinery, on SQLite and PostgreSQL: reads compiled once and
run on the driver give what SQLAlchemy gives (`CompiledSelect`), the group commit writes each
attempt whole or not at all (ENR-5, EC-3, LCK-3), and the platform cache reads once at a time."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from fixtures.features import FeatureMatrix
from server.device.request import Peer
from server.domain.enrollment.decide import decide_enrollment
from server.domain.enrollment.facts import CertificateFacts, RequestFacts
from server.domain.firmware import Catalog
from server.domain.lockout import LockoutPolicy
from server.runner import Running
from server.store import enrollment as store_enrollment
from server.store import platform_cache
from server.store.audit import audit_values
from server.store.db import CompiledSelect, ReadPlan
from server.store.enrollment import LostRace, apply_decision, load_facts
from server.store.models import AuditLog, Device
from tests.integration.client import ApiClient
from tests.integration.device_client import (
    Phone,
    enrollment_log,
    entry,
    import_phones,
    nec,
    new_customer,
    new_site,
    zero_touch,
)


async def test_compiled_reads_give_what_sqlalchemy_gives(server: Running, admin: ApiClient) -> None:
    """Every value a hot-path read returns (booleans, zone-aware datetimes, JSON entries, NULLs)
    equals what `Connection.execute(...).first()` returns for the same statement."""
    ready, locked, unknown = Phone.make(server), Phone.make(server), Phone.make(server)
    await import_phones(admin, [ready, locked])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry(group=7), pin="0042")
    (await cust.sp.call("PUT", f"/sites/{site}/firmware/J179", {"setting": "latest"})).ok()
    code = await nec(cust.sp, site)
    await zero_touch(cust, [ready], site)
    assert (await ready.enroll())["result"] == "redirect"
    for _ in range(3):  # LCK-2: failed_attempts and locked_until set
        await locked.enroll(code="00000000" if code != "00000000" else "11111111")

    reads: list[tuple[CompiledSelect, dict[str, Any]]] = [
        (store_enrollment.DEVICE_FACTS_READ, {"mac": ready.mac, "thumbprint": "ab" * 32}),
        (store_enrollment.DEVICE_FACTS_READ, {"mac": locked.mac, "thumbprint": None}),
        (store_enrollment.DEVICE_FACTS_READ, {"mac": unknown.mac, "thumbprint": "cd" * 32}),
        (store_enrollment.NEC_FACTS_READ, {"code": code, "model": "J179"}),
        (store_enrollment.NEC_FACTS_READ, {"code": "999999999999", "model": "J179"}),
        (store_enrollment.PEC_FACTS_READ, {"account": cust.id, "pin": "0042", "model": "J179"}),
        (store_enrollment.PEC_FACTS_READ, {"account": cust.id, "pin": "9999", "model": "J179"}),
        (store_enrollment.SITE_FIRMWARE, {"site": site, "model": "J179"}),
    ]

    def both(conn: Connection) -> list[tuple[Any, Any]]:
        return [(read.first(conn, params), conn.execute(read.statement, params).first()) for read, params in reads]

    def plan() -> ReadPlan[list[Any]]:
        rows = []
        for read, params in reads:
            rows.append((yield read, params))
        return rows

    store = server.opened.ctx.store
    answers = await store.run_read(both)
    # The same reads as a plan: on PostgreSQL on the asyncpg connection itself (`Store.run_plan`).
    planned = await store.run_plan(plan())
    for (fast, reference), plain, (_, params) in zip(answers, planned, reads, strict=True):
        assert (fast is None) == (reference is None) == (plain is None), params
        if fast is not None:
            assert tuple(fast) == tuple(reference) == tuple(plain), params
            assert fast._fields == tuple(reference._fields) == plain._fields
    device = answers[1][0]
    assert device.failed_attempts == 3 and isinstance(device.locked_until, datetime)
    assert device.locked_until.tzinfo is not None and device.approved is True
    assert answers[0][0].profile_entries[0]["group"] == 7 and answers[7][0].setting == "latest"


async def test_a_device_deleted_between_read_and_write_loses_the_race(server: Running, admin: ApiClient) -> None:
    """The decision was taken on a device that is gone when it is written: nothing is written,
    not even its audit entry (ENR-5: the attempt decided again is logged once)."""
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    cust = await new_customer(admin)
    site = await new_site(cust.sp, cust.id, entry())
    await zero_touch(cust, [phone], site)
    ctx = server.opened.ctx
    peer = Peer.of(phone.factory.certificate)
    request = RequestFacts(phone.model, phone.firmware, phone.mac, phone.serial, None, "127.0.0.1")
    certificate = CertificateFacts(peer.cn or "", peer.thumbprint, peer.subject)
    env = store_enrollment.Environment(FeatureMatrix.load(), Catalog.load(), LockoutPolicy())
    loaded = await load_facts(ctx.store, request, certificate, env)
    decision = decide_enrollment(loaded.facts, ctx.clock())
    assert decision.result == "redirect"
    async with ctx.store.transaction() as session:
        await session.execute(delete(Device).where(Device.mac == phone.mac))

    with pytest.raises(LostRace):
        await apply_decision(ctx, loaded, decision, ctx.clock())
    assert await enrollment_log(server) == []
    again = await phone.enroll()
    assert (again.status, again["result"]) == (404, "unknown_device")
    assert len(await enrollment_log(server)) == 1


def _audit(message: str, process: Any = "ENROLLMENT") -> dict[str, Any]:
    values = audit_values(at=datetime.now().astimezone(), process="ENROLLMENT", action="enroll", status="FAIL")
    return {**values, "process": process, "message": message}


async def test_one_attempts_fault_does_not_fail_the_others_in_its_batch(server: Running) -> None:
    """A batch that fails inside its transaction is written again one attempt per transaction:
    the faulty attempt gets its error, the others are written (ENR-5)."""
    store = server.opened.ctx.store
    writer = store_enrollment.writer(store)
    jobs = [
        store_enrollment._Write(audit=_audit(f"good {i}"), notices=[], now=datetime.now().astimezone())
        for i in range(3)
    ]
    bad = store_enrollment._Write(audit=_audit("bad", process=None), notices=[], now=datetime.now().astimezone())
    # Queued before the writer runs: one batch.
    outcomes = await asyncio.gather(*(writer.write(job) for job in [jobs[0], bad, *jobs[1:]]), return_exceptions=True)

    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert isinstance(outcomes[1], DBAPIError)
    async with store.transaction() as session:
        messages = sorted(await session.scalars(select(AuditLog.message).where(AuditLog.action == "enroll")))
    assert messages == ["good 0", "good 1", "good 2"]


async def test_a_failed_commit_fails_its_attempts_without_writing_them_again(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT that fails leaves the outcome unknown: the attempts get the error and are not
    written a second time (an attempt is never logged twice)."""
    store = server.opened.ctx.store
    writer = store_enrollment.writer(store)
    calls: list[int] = []
    original = store.run_write

    async def commit_fails(work: Any) -> Any:
        calls.append(1)
        await original(work)
        raise RuntimeError("COMMIT failed")

    monkeypatch.setattr(store, "run_write", commit_fails)
    jobs = [
        store_enrollment._Write(audit=_audit(f"once {i}"), notices=[], now=datetime.now().astimezone())
        for i in range(2)
    ]
    outcomes = await asyncio.gather(*(writer.write(job) for job in jobs), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert len(calls) == 1


async def test_the_platform_cache_reads_once_for_all_who_wait(server: Running) -> None:
    """LCK-1/FW-1 on the hot path: requests that find the value stale share one read; a read
    that began before an invalidation is not kept."""
    store = server.opened.ctx.store
    reads: list[int] = []
    release = asyncio.Event()

    async def load(_session: Any) -> int:
        reads.append(1)
        await release.wait()
        return len(reads)

    waiting = [asyncio.ensure_future(platform_cache.cached("test-value", store, load)) for _ in range(10)]
    await asyncio.sleep(0.05)
    platform_cache.invalidate()  # an edit commits while the read is under way
    release.set()
    assert await asyncio.gather(*waiting) == [1] * 10
    assert len(reads) == 1
    assert await platform_cache.cached("test-value", store, load) == 2  # read again, not the old value
    assert await platform_cache.cached("test-value", store, load) == 2  # and now kept
    assert len(reads) == 2


def _one_device_plan(mac: str) -> ReadPlan[Any]:
    row = yield store_enrollment.DEVICE_FACTS_READ, {"mac": mac, "thumbprint": None}
    return row


async def test_a_hot_connection_that_died_fails_one_read_and_is_replaced(server: Running, admin: ApiClient) -> None:
    """PostgreSQL: the hot path's kept connections (`server.store.hot`) carry no ping; one killed
    under them fails the read that meets it, and the next read opens a new one."""
    store = server.opened.ctx.store
    if store.hot is None:
        pytest.skip("PostgreSQL only: SQLite keeps no hot connections")
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    assert (await store.run_plan(_one_device_plan(phone.mac))).mac == phone.mac
    async with store.hot.connection() as hot:
        backend = hot.driver.get_server_pid()
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
    with pytest.raises(Exception):  # noqa: B017 - the driver's own connection error
        await store.run_plan(_one_device_plan(phone.mac))
    assert (await store.run_plan(_one_device_plan(phone.mac))).mac == phone.mac
    async with store.hot.connection() as hot:
        assert hot.driver.get_server_pid() != backend


async def test_a_cancelled_hot_read_gives_its_connection_slot_back(server: Running, admin: ApiClient) -> None:
    """PostgreSQL: a read cancelled mid-statement frees its slot, one more time than there are
    slots: later reads, more at once than there are slots, all get a connection and answer."""
    store = server.opened.ctx.store
    if store.hot is None:
        pytest.skip("PostgreSQL only: SQLite keeps no hot connections")
    phone = Phone.make(server)
    await import_phones(admin, [phone])
    slow = CompiledSelect(select(func.pg_sleep(bindparam("seconds")).label("slept")))

    def sleep() -> ReadPlan[Any]:
        return (yield slow, {"seconds": 5})

    for _ in range(store.hot.size + 1):
        task = asyncio.create_task(store.run_plan(sleep()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    reads = asyncio.gather(*(store.run_plan(_one_device_plan(phone.mac)) for _ in range(3 * store.hot.size)))
    rows = await asyncio.wait_for(reads, 30)  # a slot lost would make them wait for ever
    assert {row.mac for row in rows} == {phone.mac}
